namespace Nspawn.Build;

/// <summary>An expected failure with a stable code; tasks log it as <c>error NSPAWNnnnn: message</c>.</summary>
public sealed class NspawnException(string code, string message, Exception? inner = null) : Exception(message, inner)
{
    public string Code { get; } = code;
}

/// <summary>Every code the package reports. The README lists them; keep both in step.</summary>
public static class ErrorCodes
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
    public const string BtrfsFailed = "NSPAWN0020";
    public const string DebootstrapFailed = "NSPAWN0021";
    public const string SetupFailed = "NSPAWN0022";
    public const string ImageMissing = "NSPAWN0030";
    public const string BootFailed = "NSPAWN0031";
    public const string BootTimedOut = "NSPAWN0032";
    public const string StopFailed = "NSPAWN0033";
    public const string Canceled = "NSPAWN0040";
    public const string TestsFailed = "NSPAWN0050";
}
