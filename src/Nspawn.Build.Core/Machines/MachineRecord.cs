namespace Nspawn.Build;

/// <summary>A started machine and the process that owns it (the build), with start times to rule out PID reuse.</summary>
internal sealed record MachineRecord(Machine Machine, int OwnerPid, ulong OwnerStartTime)
{
    /// <summary>Left running after its tests failed (NspawnKeepOnFailure): the reaper leaves it to NspawnStopKept while it runs.</summary>
    public bool Kept { get; init; }

    public bool OwnerAlive => ProcessInfo.IsRunning(OwnerPid, OwnerStartTime);
}
