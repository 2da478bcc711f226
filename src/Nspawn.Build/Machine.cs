namespace Nspawn.Build;

/// <summary>A running ephemeral machine: all that is needed to reach it and to stop it, from this process or another.</summary>
public sealed record Machine(
    string LogicalName,
    string Name,
    string Image,
    string ImageDir,
    int LeaderPid,
    ulong LeaderStartTime,
    int NspawnPid,
    ulong NspawnStartTime,
    string? Snapshot,
    string? Unit,
    IReadOnlyList<string> Cgroups);

/// <summary>How to start one machine.</summary>
public sealed record LaunchOptions(string LogicalName, string Image, string ImageDir, string MachineName, TimeSpan BootTimeout, bool UseSystemdRun)
{
    /// <summary>Overlay machines (--volatile=overlay): a read-only image under a tmpfs, for images that are plain folders.</summary>
    public EphemeralMode Mode { get; init; } = EphemeralMode.Snapshot;

    /// <summary>More nspawn options (such as --bind-ro=...), after ours.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    // 8 hex digits of a random GUID: unique enough for the machines of one host, short enough for a host name.
    public static string UniqueName(string logicalName) => $"nspawn-{logicalName}-{Guid.NewGuid():N}"[..^24];

    /// <summary>Whether PID 1 is systemd (sd_booted): then nspawn runs in a unit and machined registers the machine.</summary>
    public static bool HostHasSystemd => Directory.Exists("/run/systemd/system");

    /// <summary>The nspawn command line, the seed's, plus what the direct path needs without host systemd.</summary>
    public IReadOnlyList<string> NspawnArguments()
    {
        var args = new List<string> { "--quiet" };
        // A snapshot of a btrfs subvolume, or the image read-only (so that machines can share it) under a tmpfs overlay.
        args.AddRange(Mode == EphemeralMode.Overlay ? ["--volatile=overlay", "--read-only"] : ["--ephemeral"]);
        args.AddRange(["--boot", "--notify-ready=yes", "--console=read-only", "--keep-unit", $"--directory={ImageDir}", $"--machine={MachineName}"]);
        if (!UseSystemdRun)
            args.Add("--register=no");
        foreach (var extra in ExtraArguments)
            args.Add(extra.StartsWith("--", StringComparison.Ordinal) ? extra
                : throw new NspawnException(ErrorCodes.BadOption, $"Extra nspawn argument '{extra}' is not an option: give options such as '--bind-ro=/srv/data'."));
        return args;
    }

    /// <summary>The seed's unit properties; Type=notify makes systemd-run return at READY=1.</summary>
    public IReadOnlyList<string> SystemdRunArguments(string nspawn, TimeSpan stopTimeout)
    {
        string[] properties =
        [
            "KillMode=mixed", "Type=notify", "NotifyAccess=all", "RestartForceExitStatus=133", "SuccessExitStatus=133",
            "Slice=machine.slice", "Delegate=yes", "TasksMax=16384", "WatchdogSec=3min",
            $"TimeoutStartSec={Math.Ceiling(BootTimeout.TotalSeconds)}s", $"TimeoutStopSec={Math.Ceiling(stopTimeout.TotalSeconds)}s",
        ];
        return [$"--unit={MachineName}", $"--description=Nspawn.Build machine {MachineName}", "--collect", "--quiet",
            .. properties.Select(p => $"--property={p}"), "--", nspawn, .. NspawnArguments()];
    }
}

/// <summary>How a machine gets its own copy of the image.</summary>
public enum EphemeralMode
{
    /// <summary>--ephemeral on btrfs: an instant snapshot, removed at stop (the seed's way).</summary>
    Snapshot,
    /// <summary>--volatile=overlay --read-only: the image stays read-only, writes go to a tmpfs.</summary>
    Overlay,
}

public static class EphemeralModes
{
    /// <summary>
    /// snapshot, overlay, or auto: snapshot where the chroots folder is on btrfs or has its loop file
    /// (unmounted after a reboot), overlay elsewhere.
    /// </summary>
    public static EphemeralMode Resolve(string? value, string chrootsDir, string loopFile) =>
        Validate.Choice<EphemeralMode?>(value, "NspawnEphemeralMode", ("snapshot", EphemeralMode.Snapshot), ("overlay", EphemeralMode.Overlay), ("auto", null))
        ?? (File.Exists(loopFile) || (BtrfsStore.ExistingDir(chrootsDir) is { } dir && BtrfsStore.IsBtrfs(dir)) ? EphemeralMode.Snapshot : EphemeralMode.Overlay);
}
