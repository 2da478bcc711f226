namespace Nspawn.Build;

/// <summary>
/// NAT needs the host to forward IPv4, and only the global switch does it: the kernel forwards a packet when the
/// interface it came in on forwards, and the replies to the machines come in on the host's uplink, not on our bridge
/// (forwarding on the bridge alone carries the requests out and drops the replies). So the switch is restored exactly
/// as found: turned on only when it is off, with a marker saying that it was us, and turned back off when the last
/// network of ours with NspawnNetworkOutbound is gone; when it was on already (a router, Docker), it is left alone.
/// Nor is it turned off when someone else turned it on meanwhile: each change of the switch sets every interface's
/// own switch to it, so once ours is on, the loopback's (which forwards nothing: nothing comes in on it for another
/// host) is turned back off as a sign, and found on again only after someone else turned the switch off and on.
/// Callers hold the network lock.
/// </summary>
internal static class IpForwarding
{
    private const string Switch = "/proc/sys/net/ipv4/ip_forward";
    private const string Sign = "/proc/sys/net/ipv4/conf/lo/forwarding";

    private static string Marker => Path.Combine(NetworkRegistry.Dir, "ip_forward.ours");

    public static void Enable() => Enable(Marker);

    /// <summary>Turns forwarding back off if we turned it on, no other network of ours needs it, and no one else turned it on since.</summary>
    public static void Release(bool stillNeeded) => Release(stillNeeded, Marker);

    /// <summary><see cref="Enable()"/> with the marker at <paramref name="marker"/>.</summary>
    internal static void Enable(string marker)
    {
        if (File.ReadAllText(Switch).Trim() != "0")
            return;
        // The marker first: after a crash in between, the reaper turns off what is off already.
        using (NativeFile.CreateNoFollow(marker))
        {
        }
        File.WriteAllText(Switch, "1");
        File.WriteAllText(Sign, "0");
    }

    /// <summary><see cref="Release(bool)"/> with the marker at <paramref name="marker"/>.</summary>
    internal static void Release(bool stillNeeded, string marker)
    {
        if (stillNeeded || FileStatus.Of(marker) is not { IsRegularFile: true })
            return;
        // Still on, and as we left it: ours to turn off (which turns every interface's switch off, as they were found).
        if (File.ReadAllText(Switch).Trim() == "1" && File.ReadAllText(Sign).Trim() == "0")
            File.WriteAllText(Switch, "0");
        File.Delete(marker);
    }
}
