namespace Nspawn.Build;

/// <summary>How a machine's end went: stopped (and how), or kept running when <see cref="Stopped"/> is null; and the logs saved, if any.</summary>
internal sealed record MachineEndResult(Machine Machine, StopOutcome? Stopped, SavedLogs? Logs)
{
    public bool Kept => Stopped is null;
}
