namespace Nspawn.Build;

/// <summary>
/// Every default of a setting, in one place. The targets pass what the project wrote (empty when unset) and
/// the resolver falls back to these; the tests' API falls back to them outside ContainerTest. Only what
/// MSBuild itself must know (where test_chroots is, NspawnOnTest) is defaulted in the targets.
/// </summary>
internal static class Defaults
{
    public const string Image = "bookworm";
    public const string Mirror = "http://deb.debian.org/debian";
    public const string Variant = "minbase";
    public const string Include = "dbus,systemd";
    public const string LoopFileName = "btrfs.img";
    /// <summary>A sparse file: the host pays only for what images use (README: the loop file's size).</summary>
    public const string LoopFileSize = "8G";
    public const string EphemeralMode = "snapshot";
    public const string Launcher = "auto";
    public const string MachineName = "default";
    /// <summary>A test's own machine's logical name (StartOptions.LogicalName), the warm pool's machines' too.</summary>
    public const string OwnMachineName = "test";
    public const string Network = "host";
    /// <summary>Private networks take a free /24 of it: rarely used, inside 10.0.0.0/8.</summary>
    public const string NetworkRange = "10.213.0.0/16";
    public const string NetworkOutbound = "false";
    /// <summary>An NspawnBind is read-only unless it says otherwise.</summary>
    public const string BindReadOnly = "true";
    public const string KeepLogs = "failure";
    public const string KeepOnFailure = "false";
    /// <summary>Guest root is nobody on the host (a user namespace); 'false' is the unsafe opt-out.</summary>
    public const string PrivateUsers = "true";
    public const bool PrivateUsersOn = true;
    /// <summary>The test results folder when VSTestResultsDirectory is not set, in the project's folder (where VSTest puts its TRX files too).</summary>
    public const string ResultsFolder = "TestResults";
    /// <summary>The folder in the test results folder that holds one folder of logs per machine.</summary>
    public const string LogsFolder = "nspawn";
    /// <summary>No warm pool: a test's own machine boots when it asks for it.</summary>
    public const int PoolSize = 0;
    /// <summary>A pool larger than this would only crowd the host; more machines at once do not boot faster.</summary>
    public const int MaxPoolSize = 16;
    public static readonly TimeSpan BootTimeout = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(15);
    public static readonly TimeSpan ImageBuildTimeout = TimeSpan.FromMinutes(30);
}
