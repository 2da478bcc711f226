namespace Nspawn.Build;

/// <summary>Every code the package reports, errors and warnings. The README lists them; keep both in step.</summary>
internal static class ErrorCodes
{
    public const string NotRoot = "NSPAWN0001";
    public const string ToolMissing = "NSPAWN0002";
    public const string ToolTooOld = "NSPAWN0003";
    public const string BadImageName = "NSPAWN0004";
    public const string BadMachineName = "NSPAWN0005";
    public const string BadMirror = "NSPAWN0006";
    public const string BadSize = "NSPAWN0007";
    public const string BadTimeout = "NSPAWN0008";
    public const string BadPackageList = "NSPAWN0009";
    public const string BadPath = "NSPAWN0010";
    public const string BadOption = "NSPAWN0011";
    public const string ReadOnly = "NSPAWN0012";
    public const string NoSpace = "NSPAWN0013";
    public const string NotOurImage = "NSPAWN0014";
    public const string NotBtrfs = "NSPAWN0015";
    /// <summary>A warning: NspawnBtrfsImageSize is smaller than the loop file, which keeps its size.</summary>
    public const string LoopFileKept = "NSPAWN0016";
    public const string BadNetworkRange = "NSPAWN0017";
    public const string BtrfsFailed = "NSPAWN0020";
    public const string DebootstrapFailed = "NSPAWN0021";
    public const string SetupFailed = "NSPAWN0022";
    public const string HostFileFailed = "NSPAWN0023";
    public const string CommandFailed = "NSPAWN0024";
    public const string ImageMissing = "NSPAWN0030";
    public const string BootFailed = "NSPAWN0031";
    public const string BootTimedOut = "NSPAWN0032";
    public const string StopFailed = "NSPAWN0033";
    public const string NetworkFailed = "NSPAWN0034";
    /// <summary>Machines need a user namespace (NspawnPrivateUsers) that this host cannot give.</summary>
    public const string NoPrivateUsers = "NSPAWN0035";
    /// <summary>A command in a machine that has no agent, on a host without systemd.</summary>
    public const string NoAgent = "NSPAWN0036";
    /// <summary>NspawnUp with NspawnPrivateUsers=false: the user's socket to guest root would be one to host root. Reported by the targets.</summary>
    public const string UpNeedsPrivateUsers = "NSPAWN0037";
    public const string Canceled = "NSPAWN0040";
    public const string TestsFailed = "NSPAWN0050";
    /// <summary>
    /// An MTP application's Microsoft.Testing.Platform cannot take the run asked for: ContainerTest needs
    /// Microsoft.Testing.Platform.MSBuild 2.4 or later, NspawnOnTest the package's extension (MTP 1.5.3 to 2.x).
    /// Reported by the targets (Nspawn.Build.TestingPlatform.targets).
    /// </summary>
    public const string TestingPlatformUnsupported = "NSPAWN0051";
    public const string BadPoolSize = "NSPAWN0080";

    // Warnings: the build goes on.
    public const string LeftAlone = "NSPAWN0060";
    public const string UnusableRecord = "NSPAWN0061";
    public const string CacheImportRejected = "NSPAWN0062";
    public const string CacheExportFailed = "NSPAWN0063";
    public const string PoolBootFailed = "NSPAWN0081";
}
