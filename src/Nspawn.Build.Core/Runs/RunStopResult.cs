namespace Nspawn.Build;

/// <summary>How a run's end went: each machine's end that completed (stopped or kept, and its logs), and what failed, in order.</summary>
internal sealed record RunStopResult(IReadOnlyList<MachineEndResult> Ended, IReadOnlyList<Exception> Failures)
{
    public IReadOnlyList<SavedLogs> Saved => Ended.Select(e => e.Logs).OfType<SavedLogs>().ToList();
}
