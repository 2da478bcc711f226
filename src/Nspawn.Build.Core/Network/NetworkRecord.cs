namespace Nspawn.Build;

/// <summary>
/// A private network and the process that made it (the build), with its start time to rule out PID reuse, and
/// the machines on it: recorded before the bridge is made, so that the reaper can remove it after a SIGKILL.
/// </summary>
internal sealed record NetworkRecord(PrivateNetwork Network, int OwnerPid, ulong OwnerStartTime, IReadOnlyList<NetworkMember> Members)
{
    public bool OwnerAlive => ProcessInfo.IsRunning(OwnerPid, OwnerStartTime);

    public string HostsText() => HostsFile.Render(Members.Select(m => (m.LogicalName, Network.Range.Address(m.Host))));
}
