namespace Nspawn.Build;

/// <summary>A started machine and the process that owns it (the build), with start times to rule out PID reuse.</summary>
internal sealed record MachineRecord(Machine Machine, int OwnerPid, ulong OwnerStartTime)
{
    public bool OwnerAlive => ProcessInfo.IsRunning(OwnerPid, OwnerStartTime);
}
