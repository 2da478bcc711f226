namespace Nspawn.Build;

/// <summary>
/// What becomes of a machine when its tests are over, on every path (NspawnStopMachines, the end-of-build
/// backstop): its logs are saved when NspawnKeepLogs wants them, then it is stopped; or, when its tests
/// failed and NspawnKeepOnFailure is set, it is left running and recorded as kept. A stop that has to kill
/// a guest that would not power off counts as a failure: its logs are saved before the kill.
/// </summary>
internal static class MachineEnd
{
    public static async Task<MachineEndResult> FinishAsync(Machine machine, bool testsFailed, CancellationToken cancellationToken)
    {
        var saved = MachineLogs.Wanted(machine, testsFailed) ? await MachineLogs.SaveAsync(machine, MachineLogs.Limit, cancellationToken) : null;
        if (testsFailed && machine.KeepOnFailure)
        {
            MachineRegistry.Add(machine, kept: true);
            return new MachineEndResult(machine, null, saved);
        }
        Func<Task>? beforeKill = saved is null && MachineLogs.Wanted(machine, failed: true)
            ? async () => saved = await MachineLogs.SaveAsync(machine, MachineLogs.StuckLimit, CancellationToken.None)
            : null;
        try
        {
            var stopped = await MachineLauncher.StopAsync(machine, cancellationToken, beforeKill);
            return new MachineEndResult(machine, stopped, saved);
        }
        catch (NspawnException e) when (saved is not null)
        {
            throw new NspawnException(e.Code, $"{e.Message} Its logs are in {saved.Dir}.", e);
        }
    }
}
