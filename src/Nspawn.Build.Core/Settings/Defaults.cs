namespace Nspawn.Build;

/// <summary>
/// Defaults that are no property's: names of files and folders, items' metadata, limits. The properties'
/// defaults are in <see cref="Settings"/>.
/// </summary>
internal static class Defaults
{
    /// <summary>The loop file's name in the chroots folder (NspawnBtrfsImageFile's default).</summary>
    public const string LoopFileName = "btrfs.img";
    /// <summary>The one machine of a project that declares no NspawnMachine item.</summary>
    public const string MachineName = "default";
    /// <summary>A test's own machine's logical name (StartOptions.LogicalName), the warm pool's machines' too.</summary>
    public const string OwnMachineName = "test";
    /// <summary>An NspawnBind is read-only unless it says otherwise.</summary>
    public const string BindReadOnly = "true";
    /// <summary>The test results folder when VSTestResultsDirectory is not set, in the project's folder (where VSTest puts its TRX files too).</summary>
    public const string ResultsFolder = "TestResults";
    /// <summary>The folder in the test results folder that holds one folder of logs per machine.</summary>
    public const string LogsFolder = "nspawn";
    /// <summary>A pool larger than this would only crowd the host; more machines at once do not boot faster.</summary>
    public const int MaxPoolSize = 16;
}
