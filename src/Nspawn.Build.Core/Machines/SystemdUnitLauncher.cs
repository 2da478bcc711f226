namespace Nspawn.Build;

/// <summary>
/// With host systemd (the seed's way): nspawn runs in a transient unit started by systemd-run, Type=notify so
/// that systemd-run returns at READY=1, and machined registers the machine.
/// </summary>
internal sealed class SystemdUnitLauncher : IMachineLauncher
{
    public static SystemdUnitLauncher Instance { get; } = new();

    public void Check()
    {
        ToolLocator.Require(Tool.SystemdRun);
        ToolLocator.Require(Tool.Systemctl);
        ToolLocator.Require(Tool.Machinectl);
    }

    public async Task<Machine> StartAsync(LaunchOptions options, CancellationToken cancellationToken)
    {
        var unit = options.MachineName + ".service";
        var record = Machine.Starting(options, unit, []);
        MachineRegistry.Add(record);
        string? failure = null;
        try
        {
            // systemd fails the start itself after TimeoutStartSec; our limit is a backstop a little later.
            var result = await HostCommand.RunAsync(ToolLocator.Require(Tool.SystemdRun), options.SystemdRunArguments(ToolLocator.Require(Tool.SystemdNspawn)),
                cancellationToken, options.BootTimeout + TimeSpan.FromSeconds(5));
            if (result.ExitCode == 0)
            {
                // Both at once: each is a process, and the build waits for the boot here.
                var mainPid = ShowAsync(Tool.Systemctl, ["show", "--property=MainPID", "--value", unit], cancellationToken);
                var leaderPid = ShowAsync(Tool.Machinectl, ["show", "--property=Leader", "--value", options.MachineName], cancellationToken);
                await Task.WhenAll(mainPid, leaderPid);
                var (pid, leader) = (int.Parse(await mainPid), int.Parse(await leaderPid));
                record = record with
                {
                    LeaderPid = leader, LeaderStartTime = ProcessInfo.StartTime(leader) ?? 0,
                    NspawnPid = pid, NspawnStartTime = ProcessInfo.StartTime(pid) ?? 0, Snapshot = MachineLauncher.FindSnapshot(pid),
                };
                MachineRegistry.Add(record);
                return record;
            }
            failure = $"(systemd-run: {result.StandardError.Trim()})";
        }
        catch (NspawnException e) when (e.Code == ErrorCodes.CommandFailed)
        {
        }
        catch (OperationCanceledException)
        {
        }

        // Not ready: keep the whole console (the unit's journal), take down whatever started, then say why with its last lines.
        var journal = await HostCommand.RunAsync(ToolLocator.Require(Tool.Journalctl), ["--unit", unit, "--lines=30", "--output=cat", "--no-pager"], CancellationToken.None);
        var saved = MachineLogs.Wanted(record, failed: !cancellationToken.IsCancellationRequested) ? await MachineLogs.SaveAsync(record, MachineLogs.StuckLimit, CancellationToken.None) : null;
        await MachineLauncher.StopAsync(record, CancellationToken.None);
        cancellationToken.ThrowIfCancellationRequested();
        throw new NspawnException(failure is null ? ErrorCodes.BootTimedOut : ErrorCodes.BootFailed,
            $"Machine '{options.LogicalName}' ({options.MachineName}) from image '{options.Image}' did not reach READY=1 {failure ?? $"within {options.BootTimeout.TotalSeconds:0.#} s (NspawnBootTimeout)"}.{(saved is null ? "" : $" The whole console is in {saved.Dir}.")} Last lines of its journal:\n{journal.StandardOutput.Trim()}");
    }

    public async Task<bool> PowerOffAsync(Machine machine, Func<Task>? beforeKill, CancellationToken cancellationToken)
    {
        // machinectl terminate, which with KillMode=mixed sends SIGTERM to nspawn only, so the guest powers off;
        // then the unit is waited for, and stopped (its processes killed) past the timeout.
        await HostCommand.RunAsync(ToolLocator.Require(Tool.Machinectl), ["terminate", machine.Name], cancellationToken);
        var deadline = DateTime.UtcNow + machine.StopTimeout;
        bool active;
        while ((active = await IsActiveAsync(machine.Unit!, cancellationToken)) && DateTime.UtcNow < deadline)
            await Task.Delay(20, cancellationToken);
        if (active && beforeKill is not null)
            await beforeKill();
        if (active)
            await HostCommand.RunAsync(ToolLocator.Require(Tool.Systemctl), ["kill", "--signal=SIGKILL", machine.Unit!], cancellationToken);
        await HostCommand.RunAsync(ToolLocator.Require(Tool.Systemctl), ["stop", machine.Unit!], cancellationToken);
        await HostCommand.RunAsync(ToolLocator.Require(Tool.Systemctl), ["reset-failed", machine.Unit!], cancellationToken);
        return !active;
    }

    private static async Task<bool> IsActiveAsync(string unit, CancellationToken cancellationToken) =>
        (await HostCommand.RunAsync(ToolLocator.Require(Tool.Systemctl), ["is-active", "--quiet", unit], cancellationToken)).ExitCode == 0;

    private static async Task<string> ShowAsync(Tool tool, IReadOnlyList<string> args, CancellationToken cancellationToken) =>
        (await HostCommand.RunCheckedAsync(ToolLocator.Require(tool), args, ErrorCodes.CommandFailed, cancellationToken)).Trim();
}
