using System.Text.Json.Serialization;

namespace Nspawn.Build;

/// <summary>
/// A build's private network: a bridge of ours with the subnet's first address (the host's side), a /24 or
/// smaller subnet for the machines, and a hosts file that every machine on it reads as its /etc/hosts.
/// </summary>
internal sealed record PrivateNetwork(string Bridge, string Subnet, bool Outbound)
{
    [JsonIgnore]
    public Ipv4Range Range => Ipv4Range.TryParse(Subnet) ?? throw new InvalidOperationException($"'{Subnet}' is not a subnet.");

    /// <summary>The bridge's address: the machines' way to the host and, with Outbound, out.</summary>
    public string Gateway => Range.Address(1);

    /// <summary>Root's folder for the network's files (under /run, never in the user's tree).</summary>
    [JsonIgnore]
    public string StateDir => Path.Combine(NetworkRegistry.Dir, Bridge);

    [JsonIgnore]
    public string HostsFile => Path.Combine(StateDir, "hosts");

    /// <summary>The host-side end of a machine's link: the bridge's name, a dash and the machine's host number (at most 15 characters).</summary>
    public string Veth(uint host) => $"{Bridge}-{host}";

    /// <summary>The host numbers machines may have: the first is the bridge's, the last the broadcast address.</summary>
    [JsonIgnore]
    public IEnumerable<uint> MachineHosts => Enumerable.Range(2, (int)Range.Size - 3).Select(n => (uint)n);
}
