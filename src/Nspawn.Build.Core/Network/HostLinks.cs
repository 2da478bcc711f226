namespace Nspawn.Build;

/// <summary>The host's side of a private network: our bridge and the machines' links into it, through ip(8).</summary>
internal static class HostLinks
{
    private static string Ip => ToolLocator.Require(Tool.Ip);

    public static bool Exists(string name) => Directory.Exists(Path.Combine("/sys/class/net", name));

    public static bool IsBridge(string name) => Directory.Exists(Path.Combine("/sys/class/net", name, "bridge"));

    /// <summary>The host's interfaces whose names start with <paramref name="prefix"/>.</summary>
    public static IEnumerable<string> Named(string prefix) =>
        Directory.Exists("/sys/class/net")
            ? Directory.EnumerateFileSystemEntries("/sys/class/net", prefix + "*").Select(Path.GetFileName).OfType<string>().ToList()
            : [];

    /// <summary>The bridge, with the gateway address on it, up.</summary>
    public static async Task CreateBridgeAsync(PrivateNetwork network, CancellationToken cancellationToken)
    {
        await RunAsync(["link", "add", network.Bridge, "type", "bridge"], cancellationToken);
        await RunAsync(["address", "add", $"{network.Gateway}/{network.Range.PrefixLength}", "dev", network.Bridge], cancellationToken);
        await RunAsync(["link", "set", network.Bridge, "up"], cancellationToken);
    }

    /// <summary>Puts a machine's host-side link (made by nspawn) into the bridge, up.</summary>
    public static async Task AttachAsync(string veth, string bridge, CancellationToken cancellationToken) =>
        await RunAsync(["link", "set", veth, "master", bridge, "up"], cancellationToken);

    /// <summary>Deletes an interface of ours if it is there (a link deleted with its machine, or a bridge).</summary>
    public static async Task DeleteAsync(string name, CancellationToken cancellationToken)
    {
        if (!Exists(name))
            return;
        var result = await HostCommand.RunAsync(Ip, ["link", "delete", name], cancellationToken);
        if (result.ExitCode != 0 && Exists(name))
            throw new NspawnException(ErrorCodes.NetworkFailed,
                $"Could not delete the interface '{name}': {result.StandardError.Trim()} Delete it by hand: ip link delete {name}");
    }

    private static Task<string> RunAsync(IReadOnlyList<string> args, CancellationToken cancellationToken) =>
        HostCommand.RunCheckedAsync(Ip, args, ErrorCodes.NetworkFailed, cancellationToken);
}
