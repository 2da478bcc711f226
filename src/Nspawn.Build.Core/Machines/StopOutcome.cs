namespace Nspawn.Build;

/// <summary>How a stop went: whether the guest powered off within its stop timeout or was killed, and how long it took.</summary>
internal sealed record StopOutcome(Machine Machine, bool PoweredOff, TimeSpan Took)
{
    public override string ToString() =>
        $"'{Machine.LogicalName}' ({Machine.Name}) in {Took.TotalSeconds:0.0} s" +
        (PoweredOff ? "" : $", killed: it did not power off within its stop timeout of {Machine.StopTimeout.TotalSeconds:0.#} s (NspawnStopTimeout)");
}
