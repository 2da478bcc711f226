namespace Nspawn.Build;

/// <summary>
/// Without host systemd: nspawn runs as our child in cgroups of its own, reports READY=1 and its leader
/// PID to a notify socket of ours, and writes the console to a file of its own (<see cref="ConsoleLog"/>).
/// </summary>
internal sealed class DirectLauncher : IMachineLauncher
{
    public static DirectLauncher Instance { get; } = new();

    public void Check() => ToolLocator.Require(Tool.Bash);

    public async Task<Machine> StartAsync(LaunchOptions options, CancellationToken cancellationToken)
    {
        var nspawn = ToolLocator.Require(Tool.SystemdNspawn);
        var cgroups = CgroupScope.Create(options.MachineName, options.UidShift);
        // Recorded before nspawn runs (and before its console file is made), so that a build killed at any moment leaves a record the next run can reap.
        var record = Machine.Starting(options, unit: null, cgroups.Dirs) with { ConsoleFile = ConsoleLog.PathOf(options.MachineName) };
        MachineRegistry.Add(record);
        ConsoleLog.Create(record.ConsoleFile!);
        using var notify = NotifyListener.Bind(Path.Combine(MachineLauncher.StateDir, options.MachineName + ".notify"));
        var child = ScopedChild.Start(cgroups, [nspawn, .. options.NspawnArguments()], onLine: null, tailLines: 30,
            new Dictionary<string, string?>
            {
                ["NOTIFY_SOCKET"] = notify.Path,
                // The guest runs its cgroups in our cgroup2 scope (delegated to its root in a user namespace), whatever
                // mix of hierarchies the host has: a v1 hierarchy cannot be delegated to a user namespace.
                ["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1",
            }, outputFile: record.ConsoleFile);
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

        // Not ready: keep the whole console (and the journal, if the guest answers), take down whatever started, then say why with the guest's last words.
        var tail = ConsoleLog.Tail(record.ConsoleFile, 30) + (child.Tail.ToString() is { Length: > 0 } shell ? "\n" + shell : "");
        var saved = MachineLogs.Wanted(record, failed: !cancellationToken.IsCancellationRequested) ? await MachineLogs.SaveAsync(record, MachineLogs.StuckLimit, CancellationToken.None) : null;
        await MachineLauncher.StopAsync(record, CancellationToken.None);
        cancellationToken.ThrowIfCancellationRequested();
        var where = saved is null ? "" : $" The whole console is in {saved.Dir}.";
        if (first == child.Task.Task)
            throw new NspawnException(ErrorCodes.BootFailed,
                $"Machine '{options.LogicalName}' ({options.MachineName}) from image '{options.Image}' exited with code {child.Task.Task.Result.ExitCode} before it was ready. Check that the image has systemd (NspawnInclude holds 'systemd').{where} Last console lines:\n{tail}");
        throw new NspawnException(ErrorCodes.BootTimedOut,
            $"Machine '{options.LogicalName}' ({options.MachineName}) did not reach READY=1 within {options.BootTimeout.TotalSeconds:0.#} s (NspawnBootTimeout){(notify.Status is null ? "" : $"; nspawn said '{notify.Status}'")}.{where} Last console lines:\n{tail}");
    }

    public async Task<bool> PowerOffAsync(Machine machine, Func<Task>? beforeKill, CancellationToken cancellationToken)
    {
        if (machine.NspawnPid <= 0)
            return true;
        // SIGTERM makes nspawn ask the guest's init to power off.
        ProcessInfo.Signal(machine.NspawnPid, machine.NspawnStartTime, ProcessInfo.SigTerm);
        if (await ProcessInfo.WaitForExitAsync(machine.NspawnPid, machine.NspawnStartTime, machine.StopTimeout, cancellationToken))
            return true;
        if (beforeKill is not null)
            await beforeKill();
        // The leader is the guest's PID 1: killing it ends every process of the guest's PID namespace.
        ProcessInfo.Signal(machine.LeaderPid, machine.LeaderStartTime, ProcessInfo.SigKill);
        ProcessInfo.Signal(machine.NspawnPid, machine.NspawnStartTime, ProcessInfo.SigKill);
        await ProcessInfo.WaitForExitAsync(machine.NspawnPid, machine.NspawnStartTime, TimeSpan.FromSeconds(5), cancellationToken);
        return false;
    }
}
