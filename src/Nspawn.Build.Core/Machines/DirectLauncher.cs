namespace Nspawn.Build;

/// <summary>
/// Without host systemd: nspawn runs as our child in cgroups of its own and reports READY=1 and its leader
/// PID to a notify socket of ours.
/// </summary>
internal sealed class DirectLauncher : IMachineLauncher
{
    public static DirectLauncher Instance { get; } = new();

    public void Check() => ToolLocator.Require(Tool.Sh);

    public async Task<Machine> StartAsync(LaunchOptions options, CancellationToken cancellationToken)
    {
        var nspawn = ToolLocator.Require(Tool.SystemdNspawn);
        var cgroups = CgroupScope.Create(options.MachineName);
        // Recorded before nspawn runs, so that a build killed at any moment leaves a record the next run can reap.
        var record = Machine.Starting(options, unit: null, cgroups.Dirs);
        MachineRegistry.Add(record);
        using var notify = NotifyListener.Bind(Path.Combine(MachineLauncher.StateDir, options.MachineName + ".notify"));
        var child = ScopedChild.Start(cgroups, [nspawn, .. options.NspawnArguments()], onLine: null, tailLines: 30,
            new Dictionary<string, string?> { ["NOTIFY_SOCKET"] = notify.Path });
        var pid = child.ProcessId;
        MachineRegistry.Add(record = record with { NspawnPid = pid, NspawnStartTime = ProcessInfo.StartTime(pid) ?? 0 });

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.BootTimeout);
        var ready = notify.WaitForReadyAsync(timeout.Token);
        var first = await Task.WhenAny(ready, child.Task.Task);
        record = record with
        {
            LeaderPid = notify.LeaderPid ?? 0,
            LeaderStartTime = notify.LeaderPid is { } leader ? ProcessInfo.StartTime(leader) ?? 0 : 0,
            Snapshot = MachineLauncher.FindSnapshot(pid),
        };
        if (first == ready && ready.IsCompletedSuccessfully && record.LeaderStartTime != 0)
        {
            MachineRegistry.Add(record);
            return record;
        }

        // Not ready: take down whatever started, then say why with the guest's last words.
        await MachineLauncher.StopAsync(record, CancellationToken.None);
        cancellationToken.ThrowIfCancellationRequested();
        if (first == child.Task.Task)
            throw new NspawnException(ErrorCodes.BootFailed,
                $"Machine '{options.LogicalName}' ({options.MachineName}) from image '{options.Image}' exited with code {child.Task.Task.Result.ExitCode} before it was ready. Check that the image has systemd (NspawnInclude holds 'systemd'). Last console lines:\n{child.Tail}");
        throw new NspawnException(ErrorCodes.BootTimedOut,
            $"Machine '{options.LogicalName}' ({options.MachineName}) did not reach READY=1 within {options.BootTimeout.TotalSeconds:0.#} s (NspawnBootTimeout){(notify.Status is null ? "" : $"; nspawn said '{notify.Status}'")}. Last console lines:\n{child.Tail}");
    }

    public async Task<bool> PowerOffAsync(Machine machine, CancellationToken cancellationToken)
    {
        if (machine.NspawnPid <= 0)
            return true;
        // SIGTERM makes nspawn ask the guest's init to power off.
        ProcessInfo.Signal(machine.NspawnPid, machine.NspawnStartTime, ProcessInfo.SigTerm);
        if (await ProcessInfo.WaitForExitAsync(machine.NspawnPid, machine.NspawnStartTime, machine.StopTimeout, cancellationToken))
            return true;
        // The leader is the guest's PID 1: killing it ends every process of the guest's PID namespace.
        ProcessInfo.Signal(machine.LeaderPid, machine.LeaderStartTime, ProcessInfo.SigKill);
        ProcessInfo.Signal(machine.NspawnPid, machine.NspawnStartTime, ProcessInfo.SigKill);
        await ProcessInfo.WaitForExitAsync(machine.NspawnPid, machine.NspawnStartTime, TimeSpan.FromSeconds(5), cancellationToken);
        return false;
    }
}
