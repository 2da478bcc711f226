namespace Nspawn.Build;

/// <summary>How to start one machine: resolved from the project's settings, or from a test's StartOptions.</summary>
internal sealed record LaunchOptions(string LogicalName, string ImageDir)
{
    public string Image => Path.GetFileName(ImageDir);
    /// <summary>Unique on the host: a new one for each start.</summary>
    public string MachineName { get; init; } = TempNames.Machine(LogicalName);
    public TimeSpan BootTimeout { get; init; } = Settings.BootTimeout.Default;
    public TimeSpan StopTimeout { get; init; } = Settings.StopTimeout.Default;
    /// <summary>nspawn in a transient unit of the host's systemd, registered with machined; else our child.</summary>
    public bool UseSystemdRun { get; init; }
    /// <summary>
    /// Overlay machines (--volatile=overlay): a read-only image under a tmpfs, for images that are plain folders. No default
    /// of its own: the resolver, the launch file or StartOptions decide it (NspawnEphemeralMode's 'auto' depends on the folder).
    /// </summary>
    public EphemeralMode Mode { get; init; }
    /// <summary>The host's network, a private one, or none.</summary>
    public NetworkMode Network { get; init; } = Settings.Network.Default;
    /// <summary>The private network to join (with <see cref="NetworkMode.Private"/>).</summary>
    public PrivateNetwork? PrivateNetwork { get; init; }
    /// <summary>The machine's place on it, given when it starts.</summary>
    public NetworkAttachment? Attachment { get; init; }
    /// <summary>Host folders and files in the machine (NspawnBind, StartOptions.Binds).</summary>
    public IReadOnlyList<BindMount> Binds { get; init; } = [];
    /// <summary>The test results folder, where the machine's logs go (in nspawn/LOGICAL) when they are kept; none for a test's own machine.</summary>
    public string? ResultsDir { get; init; }
    public KeepLogs KeepLogs { get; init; } = Settings.KeepLogs.Default;
    /// <summary>Left running when its tests fail, for a look inside (NspawnKeepOnFailure).</summary>
    public bool KeepOnFailure { get; init; }
    /// <summary>
    /// Guest root is an unprivileged host UID (a user namespace, NspawnPrivateUsers): the default. Off, guest root is
    /// host root, which only a trusted image and trusted tests may have.
    /// </summary>
    public bool PrivateUsers { get; init; } = Settings.PrivateUsers.Default;
    /// <summary>The first host UID of the machine's user namespace (<see cref="UidRange"/>), claimed when it starts.</summary>
    public uint? UidShift { get; init; }
    /// <summary>An overlay machine's image as its user namespace sees it (<see cref="IdmappedMount"/>), booted instead of the image folder.</summary>
    public string? MappedImageDir { get; init; }
    /// <summary>More nspawn options (such as --bind-ro=...), after ours.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>The tests' output folder, bound read-only at the same path (InvokeAsync loads the test assembly from it).</summary>
    public string? CodeDir { get; init; }
    /// <summary>The agent's nspawn options and the guest init's arguments (<see cref="Agent.AgentSetup"/>).</summary>
    public IReadOnlyList<string> AgentArguments { get; init; } = [];
    public IReadOnlyList<string> InitArguments { get; init; } = [];
    /// <summary>Why the machine gets no agent, when it does not.</summary>
    public string? AgentProblem { get; init; }

    /// <summary>Whether PID 1 is systemd (sd_booted): then nspawn runs in a unit and machined registers the machine.</summary>
    public static bool HostHasSystemd => Directory.Exists("/run/systemd/system");

    /// <summary>The nspawn command line, the seed's, plus what the direct path needs without host systemd.</summary>
    public IReadOnlyList<string> NspawnArguments()
    {
        var args = new List<string> { "--quiet" };
        // A snapshot of a btrfs subvolume, or the image read-only (so that machines can share it) under a tmpfs overlay.
        args.AddRange(Mode == EphemeralMode.Overlay ? ["--volatile=overlay", "--read-only"] : ["--ephemeral"]);
        args.AddRange(["--boot", "--notify-ready=yes", "--console=read-only", "--keep-unit", $"--directory={MappedImageDir ?? ImageDir}", $"--machine={MachineName}"]);
        if (!UseSystemdRun)
            args.Add("--register=no");
        // The image stays root's on disk: an idmapped mount shows it to the guest as its own ('map' fails rather than chown a shared image).
        // An overlay cannot be mapped: its lower folder is mapped already ('off': nspawn takes the owners as they show).
        if (UidShift is { } shift)
            args.AddRange([$"--private-users={shift}:{UidRange.Size}", MappedImageDir is null ? "--private-users-ownership=map" : "--private-users-ownership=off"]);
        if (Network == NetworkMode.None)
            args.Add("--private-network");
        if (Attachment is { } attachment)
            args.AddRange(attachment.NspawnArguments());
        args.AddRange(Binds.Select(b => b.Argument(UidShift is not null)));
        // Before the extra options, so that a machine's own can hide what the agent needs (a guest without the runtime).
        args.AddRange(AgentArguments);
        foreach (var extra in ExtraArguments)
            args.Add(extra.StartsWith("--", StringComparison.Ordinal) ? extra
                : throw new NspawnException(ErrorCodes.BadOption, $"NspawnArguments of machine '{LogicalName}': '{extra}' is not an option. Give options such as '--bind-ro=/srv/data'."));
        // After every option: the guest's init takes them as its command line.
        args.AddRange(InitArguments);
        return args;
    }

    /// <summary>The seed's unit properties; Type=notify makes systemd-run return at READY=1.</summary>
    public IReadOnlyList<string> SystemdRunArguments(string nspawn)
    {
        string[] properties =
        [
            "KillMode=mixed", "Type=notify", "NotifyAccess=all", "RestartForceExitStatus=133", "SuccessExitStatus=133",
            "Slice=machine.slice", "Delegate=yes", "TasksMax=16384", "WatchdogSec=3min",
            // systemd-nspawn@.service's device policy: the standard pseudo devices, terminals and tun; no disk.
            "DevicePolicy=closed", "DeviceAllow=/dev/net/tun rwm", "DeviceAllow=char-pts rw",
            $"TimeoutStartSec={Math.Ceiling(BootTimeout.TotalSeconds)}s", $"TimeoutStopSec={Math.Ceiling(StopTimeout.TotalSeconds)}s",
        ];
        return [$"--unit={MachineName}", $"--description=Nspawn.Build machine {MachineName}", "--collect", "--quiet",
            .. properties.Select(p => $"--property={p}"), "--", nspawn, .. NspawnArguments()];
    }
}
