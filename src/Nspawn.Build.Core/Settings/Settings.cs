using Mode = Nspawn.Testing.EphemeralMode;
using Logs = Nspawn.Build.KeepLogs;

namespace Nspawn.Build;

/// <summary>
/// Every Nspawn* property that ResolveNspawnSettings reads, declared once: its name, its default, its parser. The
/// resolver reads each through here, the types' initialisers take the typed defaults from here, and tests hold the
/// targets (each is passed to the task) and the README's properties table (each is listed, with this default) to it.
/// NspawnOnTest and NspawnBuildTasksAssembly are MSBuild's alone: the targets default them.
/// </summary>
internal static class Settings
{
    public static readonly Setting<string> ChrootsDir = new("NspawnChrootsDir", "", Validate.AbsolutePath, "where images live; on btrfs, or a btrfs loop file system")
    {
        // MSBuild needs it (to find test_chroots), so the targets make it.
        Shown = "the nearest test_chroots/ (holding a CACHEDIR.TAG) at or above the project, else one next to the solution, else next to the project",
    };
    public static readonly Setting<string> BtrfsImageFile = new("NspawnBtrfsImageFile", "", Validate.AbsolutePath, "the loop file, made where the chroots folder is not on btrfs")
    {
        Shown = "$(NspawnChrootsDir)/" + Defaults.LoopFileName,
    };
    /// <summary>A sparse file: the host pays only for what images use (README: the loop file's size).</summary>
    public static readonly Setting<long> BtrfsImageSize = new("NspawnBtrfsImageSize", "8G", Validate.Size, "the loop file's size");
    /// <summary>Null for 'auto', which <see cref="EphemeralModeResolver"/> decides from the chroots folder.</summary>
    public static readonly Setting<Mode?> EphemeralMode = new("NspawnEphemeralMode", "snapshot",
        (v, l) => Validate.Choice<Mode?>(v, l, ("snapshot", Mode.Snapshot), ("overlay", Mode.Overlay), ("auto", null)), "how a machine gets its copy of the image");

    public static readonly Setting<string> Image = new("NspawnImage", "bookworm", Validate.ImageName, "the main image's name");
    public static readonly Setting<string> Suite = new("NspawnSuite", "", Validate.ImageName, "the Debian suite debootstrap installs") { Shown = "$(NspawnImage)" };
    public static readonly Setting<string> Mirror = new("NspawnMirror", "http://deb.debian.org/debian", Validate.Mirror, "an http(s) Debian mirror");
    public static readonly Setting<string> Variant = new("NspawnVariant", "minbase", Validate.Variant, "debootstrap's variant");
    public static readonly Setting<IReadOnlyList<string>> Include = new("NspawnInclude", "dbus,systemd", Validate.Packages, "extra packages (the image needs systemd)");
    public static readonly Setting<IReadOnlyList<string>> Exclude = new("NspawnExclude", "", Validate.Packages, "packages debootstrap leaves out");
    public static readonly Setting<string> Arch = new("NspawnArch", "", Validate.Word, "the image's architecture") { Shown = "the host's" };
    // None given: debootstrap's own.
    public static readonly Setting<IReadOnlyList<string>> Components = new("NspawnComponents", "", Validate.Words, "archive components") { Shown = "main" };
    /// <summary>The text as written: the resolver finds the file from the project's folder.</summary>
    public static readonly Setting<string> SetupScript = new("NspawnSetupScript", "", (v, _) => v, "a script run as root inside a new image");
    public static readonly Setting<bool> SlimBoot = new("NspawnSlimBoot", "false", Validate.Flag, "mask what a short-lived machine does not need");
    public static readonly Setting<TimeSpan?> ImageMaxAge = new("NspawnImageMaxAge", "", Validate.MaxAge, "rebuild an image older than this");
    public static readonly Setting<string?> ImageCacheDir = new("NspawnImageCacheDir", "",
        (v, l) => string.IsNullOrWhiteSpace(v) ? null : Validate.AbsolutePath(v, l), "a folder to export images to and import them from");
    public static readonly Setting<TimeSpan> ImageBuildTimeout = new("NspawnImageBuildTimeout", "1800", Validate.Timeout, "how long an image's build, import or export may take");
    public static readonly Setting<IReadOnlyList<string>> KeepImages = new("NspawnKeepImages", "", Validate.Words, "images NspawnCleanImages keeps");

    public static readonly Setting<TimeSpan> BootTimeout = new("NspawnBootTimeout", "60", Validate.Timeout, "how long a machine may take to boot");
    public static readonly Setting<TimeSpan> StopTimeout = new("NspawnStopTimeout", "15", Validate.Timeout, "how long a machine gets to power off before it is killed");
    /// <summary>Whether nspawn runs in a transient unit of the host's systemd.</summary>
    public static readonly Setting<bool> Launcher = new("NspawnLauncher", "auto",
        (v, l) => Validate.Choice(v, l, ("auto", LaunchOptions.HostHasSystemd), ("systemd-run", true), ("direct", false)), "systemd-run, direct, or auto");
    /// <summary>Guest root is nobody on the host (a user namespace); 'false' is the unsafe opt-out.</summary>
    public static readonly Setting<bool> PrivateUsers = new("NspawnPrivateUsers", "true", Validate.Flag, "every machine in a user namespace of its own");
    public static readonly Setting<NetworkMode> Network = new("NspawnNetwork", "host",
        (v, l) => Validate.Choice(v, l, ("host", NetworkMode.Host), ("private", NetworkMode.Private), ("none", NetworkMode.None)), "the machines' network");
    /// <summary>Private networks take a free /24 of it: rarely used, inside 10.0.0.0/8.</summary>
    public static readonly Setting<Ipv4Range> NetworkRange = new("NspawnNetworkRange", "10.213.0.0/16", Validate.NetworkRange, "the range private networks take theirs from");
    public static readonly Setting<bool> NetworkOutbound = new("NspawnNetworkOutbound", "false", Validate.Flag, "private machines reach outside through the host");
    /// <summary>No warm pool: a test's own machine boots when it asks for it.</summary>
    public static readonly Setting<int> PoolSize = new("NspawnPoolSize", "0", Validate.PoolSize, "machines kept booted ahead for StartAsync");
    public static readonly Setting<Logs> KeepLogs = new("NspawnKeepLogs", "failure",
        (v, l) => Validate.Choice(v, l, ("failure", Logs.Failure), ("always", Logs.Always), ("never", Logs.Never)), "when the machines' logs are saved");
    public static readonly Setting<bool> KeepOnFailure = new("NspawnKeepOnFailure", "false", Validate.Flag, "machines stay running after failed tests");

    public static IReadOnlyList<Setting> All { get; } =
    [
        ChrootsDir, BtrfsImageFile, BtrfsImageSize, EphemeralMode, Image, Suite, Mirror, Variant, Include, Exclude, Arch, Components, SetupScript,
        SlimBoot, ImageMaxAge, ImageCacheDir, ImageBuildTimeout, KeepImages, BootTimeout, StopTimeout, Launcher, PrivateUsers, Network, NetworkRange,
        NetworkOutbound, PoolSize, KeepLogs, KeepOnFailure,
    ];
}
