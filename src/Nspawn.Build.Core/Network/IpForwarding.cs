namespace Nspawn.Build;

/// <summary>
/// NAT needs the host to forward IPv4. It is turned on only when it is off, with a marker saying that it was
/// us, and turned back off when the last network of ours with NspawnNetworkOutbound is gone; when it was on
/// already (a router, Docker), it is left alone. Callers hold the network lock.
/// </summary>
internal static class IpForwarding
{
    private const string Sysctl = "/proc/sys/net/ipv4/ip_forward";

    private static string Marker => Path.Combine(NetworkRegistry.Dir, "ip_forward.ours");

    public static void Enable()
    {
        if (File.ReadAllText(Sysctl).Trim() != "0")
            return;
        // The marker first: after a crash in between, the reaper turns off what is off already.
        using (NativeFile.CreateNoFollow(Marker))
        {
        }
        File.WriteAllText(Sysctl, "1");
    }

    /// <summary>Turns forwarding back off if we turned it on and no other network of ours needs it.</summary>
    public static void Release(bool stillNeeded)
    {
        if (stillNeeded || FileStatus.Of(Marker) is not { IsRegularFile: true })
            return;
        File.WriteAllText(Sysctl, "0");
        File.Delete(Marker);
    }
}
