namespace Nspawn.Build;

/// <summary>One machine's place on a private network: its host number, its address, and its files.</summary>
internal sealed record NetworkAttachment(PrivateNetwork Network, string MachineName, uint Host)
{
    /// <summary>The interface inside the machine (nspawn's own name for it).</summary>
    public const string GuestInterface = "host0";

    public string Address => Network.Range.Address(Host);

    public string Veth => Network.Veth(Host);

    /// <summary>Bound read-only over /etc/hostname: the logical name, which the guest's systemd sets at boot.</summary>
    public string HostnameFile => Path.Combine(Network.StateDir, MachineName + ".hostname");

    /// <summary>The nspawn options that put the machine on the network, with its name and everyone's names.</summary>
    public IReadOnlyList<string> NspawnArguments() =>
    [
        $"--network-veth-extra={Veth}:{GuestInterface}",
        $"--bind-ro={BindMount.Escape(Network.HostsFile)}:/etc/hosts",
        $"--bind-ro={BindMount.Escape(HostnameFile)}:/etc/hostname",
    ];
}
