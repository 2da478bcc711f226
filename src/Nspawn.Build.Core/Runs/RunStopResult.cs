namespace Nspawn.Build;

/// <summary>
/// How a run's end went: each machine's end that completed (stopped or kept, and its logs), and what failed, in order;
/// the pool and the network whose end failed, for a later end to try again.
/// </summary>
internal sealed record RunStopResult(IReadOnlyList<MachineEndResult> Ended, IReadOnlyList<Exception> Failures,
    MachinePool? PoolLeft = null, PrivateNetwork? NetworkLeft = null)
{
    public IReadOnlyList<SavedLogs> Saved => Ended.Select(e => e.Logs).OfType<SavedLogs>().ToList();
}
