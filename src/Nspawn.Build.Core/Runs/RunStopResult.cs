namespace Nspawn.Build;

/// <summary>
/// How a run's end went: each machine's end that completed (stopped or kept, and its logs), and what failed, in order;
/// whether the pool's or the network's end failed, for a later end to try again.
/// </summary>
internal sealed record RunStopResult(IReadOnlyList<MachineEndResult> Ended, IReadOnlyList<Exception> Failures,
    bool PoolLeft = false, bool NetworkLeft = false)
{
    public IReadOnlyList<SavedLogs> Saved => Ended.Select(e => e.Logs).OfType<SavedLogs>().ToList();
}
