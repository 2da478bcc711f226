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
    // 8 hex digits of a random GUID: unique enough for the machines of one host, short enough for a host name.
    public static string UniqueName(string logicalName) => $"nspawn-{logicalName}-{Guid.NewGuid():N}"[..^24];

    /// <summary>Whether PID 1 is systemd (sd_booted): then nspawn runs in a unit and machined registers the machine.</summary>
    public static bool HostHasSystemd => Directory.Exists("/run/systemd/system");

    /// <summary>The nspawn command line, the seed's, plus what the direct path needs without host systemd.</summary>
    public IReadOnlyList<string> NspawnArguments()
    {
        var args = new List<string>
        {
            "--quiet", "--ephemeral", "--boot", "--notify-ready=yes", "--console=read-only",
            "--keep-unit", $"--directory={ImageDir}", $"--machine={MachineName}",
        };
        if (!UseSystemdRun)
            args.Add("--register=no");
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
