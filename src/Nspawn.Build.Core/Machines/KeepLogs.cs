namespace Nspawn.Build;

/// <summary>When a machine's journal and console are saved in the test results folder (NspawnKeepLogs).</summary>
internal enum KeepLogs
{
    /// <summary>When its tests failed, or it failed to boot or to stop.</summary>
    Failure,
    /// <summary>At every stop.</summary>
    Always,
    /// <summary>Never: the folder is not even made.</summary>
    Never,
}
