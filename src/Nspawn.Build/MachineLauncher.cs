using CliWrap;
using CliWrap.Buffered;

namespace Nspawn.Build;

/// <summary>
/// Boots and stops ephemeral machines: the seed's Chroot class. With host systemd nspawn runs in a
/// transient unit (systemd-run); without it, nspawn runs as our child in a cgroup of its own and reports
/// to a notify socket of ours.
/// </summary>
public static class MachineLauncher
{
    public const string StateDir = "/run/nspawn-build";

    // Enters each cgroup given before "--", then becomes the command after it: a fixed script, arguments stay a list.
    internal const string EnterCgroupsAndExec = "while [ \"$1\" != -- ]; do echo $$ > \"$1\" || true; shift; done; shift; exec \"$@\"";

    public static TimeSpan DefaultStopTimeout { get; } = TimeSpan.FromSeconds(15);

    /// <summary>Everything that can be checked before anything is created.</summary>
    public static void Check(LaunchOptions options)
    {
        Tools.RequireRoot();
        Tools.Require(Tool.SystemdNspawn);
        if (options.UseSystemdRun)
        {
            Tools.Require(Tool.SystemdRun);
            Tools.Require(Tool.Systemctl);
            Tools.Require(Tool.Machinectl);
        }
    }

    public static async Task<Machine> StartAsync(LaunchOptions options, CancellationToken cancellationToken)
    {
        Check(options);
        if (!File.Exists(Path.Combine(options.ImageDir, ImageBuilder.StampPath)) && !File.Exists(Path.Combine(options.ImageDir, "etc/os-release")) && !File.Exists(Path.Combine(options.ImageDir, "usr/lib/os-release")))
            throw new NspawnException(ErrorCodes.ImageMissing,
                $"The image '{options.ImageDir}' for machine '{options.LogicalName}' does not exist or holds no OS. Build it first (the NspawnPrepareImages target), or fix the machine's Image.");
        if (MachineRegistry.Contains(options.MachineName))
            throw new NspawnException(ErrorCodes.BadMachineName, $"A machine named '{options.MachineName}' is already running. Stop it first, or give this one another name.");
        Directory.CreateDirectory(StateDir);
        return options.UseSystemdRun
            ? await StartInUnitAsync(options, cancellationToken)
            : await StartDirectAsync(options, cancellationToken);
    }

    private static async Task<Machine> StartDirectAsync(LaunchOptions options, CancellationToken cancellationToken)
    {
        var nspawn = Tools.Require(Tool.SystemdNspawn);
        var cgroups = CgroupScope.Create(options.MachineName);
        // Recorded before nspawn runs, so that a build killed at any moment leaves a record the next run can reap.
        var record = new Machine(options.LogicalName, options.MachineName, options.Image, options.ImageDir, 0, 0, 0, 0, null, null, cgroups.Dirs);
        MachineRegistry.Add(record);
        var console = new LineTail(30);
        using var notify = NotifyListener.Bind(Path.Combine(StateDir, options.MachineName + ".notify"));
        var running = Cli.Wrap(Tools.Require(Tool.Sh))
            .WithArguments(["-c", EnterCgroupsAndExec, "sh", .. cgroups.ProcsFiles, "--", nspawn, .. options.NspawnArguments()])
            .WithEnvironmentVariables(e => e.Set("NOTIFY_SOCKET", notify.Path))
            .WithStandardOutputPipe(PipeTarget.ToDelegate(console.Add))
            .WithStandardErrorPipe(PipeTarget.ToDelegate(console.Add))
            .WithValidation(CommandResultValidation.None)
            .ExecuteAsync();
        var pid = running.ProcessId;
        var nspawnStart = ProcessInfo.StartTime(pid) ?? 0;
        MachineRegistry.Add(record = record with { NspawnPid = pid, NspawnStartTime = nspawnStart });

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.BootTimeout);
        var ready = notify.WaitForReadyAsync(timeout.Token);
        var first = await Task.WhenAny(ready, running.Task);
        record = record with
        {
            LeaderPid = notify.LeaderPid ?? 0,
            LeaderStartTime = notify.LeaderPid is { } leader ? ProcessInfo.StartTime(leader) ?? 0 : 0,
            Snapshot = FindSnapshot(pid),
        };
        if (first == ready && ready.IsCompletedSuccessfully && record.LeaderStartTime != 0)
        {
            MachineRegistry.Add(record);
            return record;
        }

        // Not ready: take down whatever started, then say why with the guest's last words.
        await StopAsync(record, TimeSpan.FromSeconds(5), CancellationToken.None);
        cancellationToken.ThrowIfCancellationRequested();
        if (first == running.Task)
            throw new NspawnException(ErrorCodes.BootFailed,
                $"Machine '{options.LogicalName}' ({options.MachineName}) from image '{options.Image}' exited with code {running.Task.Result.ExitCode} before it was ready. Check that the image has systemd (NspawnInclude holds 'systemd'). Last console lines:\n{console}");
        throw new NspawnException(ErrorCodes.BootTimedOut,
            $"Machine '{options.LogicalName}' ({options.MachineName}) did not reach READY=1 within {options.BootTimeout.TotalSeconds:0.#} s (NspawnBootTimeout){(notify.Status is null ? "" : $"; nspawn said '{notify.Status}'")}. Last console lines:\n{console}");
    }

    private static async Task<Machine> StartInUnitAsync(LaunchOptions options, CancellationToken cancellationToken)
    {
        var unit = options.MachineName + ".service";
        MachineRegistry.Add(new Machine(options.LogicalName, options.MachineName, options.Image, options.ImageDir, 0, 0, 0, 0, null, unit, []));
        var args = options.SystemdRunArguments(Tools.Require(Tool.SystemdNspawn), DefaultStopTimeout);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // systemd fails the start itself after TimeoutStartSec; ours is a backstop a little later.
        timeout.CancelAfter(options.BootTimeout + TimeSpan.FromSeconds(5));
        BufferedCommandResult? result = null;
        try
        {
            result = await Cli.Wrap(Tools.Require(Tool.SystemdRun)).WithArguments(args)
                .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
        }
        if (result?.ExitCode == 0)
        {
            var pid = int.Parse(await ShowAsync(Tool.Systemctl, ["show", "--property=MainPID", "--value", unit]));
            var leader = int.Parse(await ShowAsync(Tool.Machinectl, ["show", "--property=Leader", "--value", options.MachineName]));
            var machine = new Machine(options.LogicalName, options.MachineName, options.Image, options.ImageDir,
                leader, ProcessInfo.StartTime(leader) ?? 0, pid, ProcessInfo.StartTime(pid) ?? 0, FindSnapshot(pid), unit, []);
            MachineRegistry.Add(machine);
            return machine;
        }

        var journal = await Cli.Wrap(Tools.Require(Tool.Journalctl)).WithArguments(["--unit", unit, "--lines=30", "--output=cat", "--no-pager"])
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(CancellationToken.None);
        await StopAsync(new Machine(options.LogicalName, options.MachineName, options.Image, options.ImageDir, 0, 0, 0, 0, null, unit, []),
            TimeSpan.FromSeconds(5), CancellationToken.None);
        cancellationToken.ThrowIfCancellationRequested();
        throw new NspawnException(result is null ? ErrorCodes.BootTimedOut : ErrorCodes.BootFailed,
            $"Machine '{options.LogicalName}' ({options.MachineName}) from image '{options.Image}' did not reach READY=1 {(result is null ? $"within {options.BootTimeout.TotalSeconds:0.#} s (NspawnBootTimeout)" : $"(systemd-run: {result.StandardError.Trim()})")}. Last lines of its journal:\n{journal.StandardOutput.Trim()}");
    }

    /// <summary>
    /// Runs a script inside an image that is not booted (an image's setup script), with the host's network,
    /// as nspawn's only command; each output line goes to <paramref name="output"/>. Throws NSPAWN0022 when it fails.
    /// </summary>
    public static async Task RunScriptInImageAsync(string imageDir, string script, Action<string> output, CancellationToken cancellationToken)
    {
        var nspawn = Tools.Require(Tool.SystemdNspawn);
        var name = LaunchOptions.UniqueName("setup");
        string[] run =
        [
            nspawn, "--quiet", "--register=no", "--keep-unit", "--console=pipe", $"--directory={imageDir}", $"--machine={name}",
            $"--bind-ro={script}:/run/nspawn-build-setup", "--setenv=DEBIAN_FRONTEND=noninteractive", "--", "/bin/sh", "-e", "/run/nspawn-build-setup",
        ];
        var tail = new LineTail(20);
        void OnLine(string line)
        {
            tail.Add(line);
            output(line);
        }
        // Like a machine: in a unit of its own where systemd runs the host, else in cgroups of its own.
        var cgroups = LaunchOptions.HostHasSystemd ? new CgroupScope([]) : CgroupScope.Create(name);
        var command = LaunchOptions.HostHasSystemd
            ? Cli.Wrap(Tools.Require(Tool.SystemdRun)).WithArguments(["--pipe", "--wait", "--quiet", "--collect", "--property=Delegate=yes", $"--unit={name}", "--", .. run])
            : Cli.Wrap(Tools.Require(Tool.Sh)).WithArguments(["-c", EnterCgroupsAndExec, "sh", .. cgroups.ProcsFiles, "--", .. run]);
        using var forceful = new CancellationTokenSource();
        using var escalate = cancellationToken.Register(() => forceful.CancelAfter(TimeSpan.FromSeconds(10)));
        try
        {
            var result = await command.WithStandardOutputPipe(PipeTarget.ToDelegate(OnLine)).WithStandardErrorPipe(PipeTarget.ToDelegate(OnLine))
                .WithValidation(CommandResultValidation.None).ExecuteAsync(forceful.Token, cancellationToken);
            if (result.ExitCode != 0)
                throw new NspawnException(ErrorCodes.SetupFailed,
                    $"The setup script '{script}' failed with exit code {result.ExitCode} in the new image; the image was not changed. Last output:\n{tail}");
        }
        finally
        {
            await cgroups.KillAllAsync(TimeSpan.FromSeconds(5));
            cgroups.Remove();
        }
    }

    /// <summary>
    /// Powers the machine off (SIGTERM to nspawn, or stopping its unit), waits up to <paramref name="timeout"/>,
    /// then kills what is left. Succeeds only when nspawn is gone and its snapshot removed.
    /// </summary>
    public static async Task StopAsync(Machine machine, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (machine.Unit is not null)
        {
            // The seed's way: machinectl terminate, which with KillMode=mixed sends SIGTERM to nspawn only, so the
            // guest powers off; then the unit is waited for, and stopped (its processes killed) past the timeout.
            await RunQuietAsync(Tool.Machinectl, ["terminate", machine.Name], cancellationToken);
            var deadline = DateTime.UtcNow + timeout;
            while (await RunQuietAsync(Tool.Systemctl, ["is-active", "--quiet", machine.Unit], cancellationToken) == 0 && DateTime.UtcNow < deadline)
                await Task.Delay(20, cancellationToken);
            await RunQuietAsync(Tool.Systemctl, ["stop", machine.Unit], cancellationToken);
            await RunQuietAsync(Tool.Systemctl, ["reset-failed", machine.Unit], cancellationToken);
        }
        else if (machine.NspawnPid > 0)
        {
            ProcessInfo.Signal(machine.NspawnPid, machine.NspawnStartTime, ProcessInfo.SigTerm);
            if (!await ProcessInfo.WaitForExitAsync(machine.NspawnPid, machine.NspawnStartTime, timeout, cancellationToken))
            {
                // The leader is the guest's PID 1: killing it ends every process of the guest's PID namespace.
                ProcessInfo.Signal(machine.LeaderPid, machine.LeaderStartTime, ProcessInfo.SigKill);
                ProcessInfo.Signal(machine.NspawnPid, machine.NspawnStartTime, ProcessInfo.SigKill);
                await ProcessInfo.WaitForExitAsync(machine.NspawnPid, machine.NspawnStartTime, TimeSpan.FromSeconds(5), cancellationToken);
            }
        }
        // What is left in the machine's cgroups (a guest whose nspawn was killed) is killed, then the cgroups removed.
        var cgroups = new CgroupScope(machine.Cgroups);
        await cgroups.KillAllAsync(TimeSpan.FromSeconds(5));
        cgroups.Remove();

        // nspawn removes its snapshot on a clean exit; after a kill it is ours to remove.
        if (machine.Snapshot is { } snapshot)
        {
            if (Directory.Exists(snapshot))
                await ImageBuilder.RemoveTreeAsync(snapshot, cancellationToken);
            File.Delete(SnapshotLock(snapshot));
        }
        File.Delete(Path.Combine(StateDir, machine.Name + ".notify"));

        var stopped = !ProcessInfo.IsRunning(machine.NspawnPid, machine.NspawnStartTime) && !(machine.Snapshot is { } s && Directory.Exists(s));
        if (stopped)
            MachineRegistry.Remove(machine.Name);
        else
            throw new NspawnException(ErrorCodes.StopFailed,
                $"Machine '{machine.LogicalName}' ({machine.Name}) could not be stopped: nspawn PID {machine.NspawnPid} or snapshot '{machine.Snapshot}' is still there. Stop it by hand (kill {machine.NspawnPid}; btrfs subvolume delete '{machine.Snapshot}').");
    }

    /// <summary>nspawn holds a lock on '.#' + snapshot name + '.lck' next to its snapshot: that names the snapshot.</summary>
    public static string? FindSnapshot(int nspawnPid)
    {
        try
        {
            foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{nspawnPid}/fd"))
                if (SnapshotFromLock(new FileInfo(fd).LinkTarget) is { } snapshot)
                    return snapshot;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }

    public static string? SnapshotFromLock(string? lockPath)
    {
        var name = Path.GetFileName(lockPath);
        if (lockPath is null || name is null || !name.StartsWith(".#.#machine.", StringComparison.Ordinal) || !name.EndsWith(".lck", StringComparison.Ordinal))
            return null;
        return Path.Combine(Path.GetDirectoryName(lockPath)!, name[2..^4]);
    }

    private static string SnapshotLock(string snapshot) =>
        Path.Combine(Path.GetDirectoryName(snapshot)!, ".#" + Path.GetFileName(snapshot) + ".lck");

    private static async Task<int> RunQuietAsync(Tool tool, IReadOnlyList<string> args, CancellationToken cancellationToken) =>
        (await Cli.Wrap(Tools.Require(tool)).WithArguments(args).WithValidation(CommandResultValidation.None)
            .ExecuteBufferedAsync(cancellationToken)).ExitCode;

    private static async Task<string> ShowAsync(Tool tool, IReadOnlyList<string> args)
    {
        var r = await Cli.Wrap(Tools.Require(tool)).WithArguments(args).ExecuteBufferedAsync();
        return r.StandardOutput.Trim();
    }
}
