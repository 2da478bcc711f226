namespace Nspawn.Build;

/// <summary>
/// NspawnNetworkOutbound: a table of ours in nftables, named as the bridge, that masquerades the machines'
/// traffic out of the host, lets only replies back in, and keeps them out of other builds' networks. The
/// whole table goes in one transaction, and goes away in one: nothing else of the host's rule set is touched.
/// </summary>
internal static class OutboundRules
{
    private static string Nft => ToolLocator.Require(Tool.Nft);

    public static string Ruleset(PrivateNetwork network) => $$"""
        table ip {{network.Bridge}} {
          chain postrouting {
            type nat hook postrouting priority 100; policy accept;
            ip saddr {{network.Subnet}} oifname != "{{network.Bridge}}" masquerade
          }
          chain forward {
            type filter hook forward priority 0; policy accept;
            iifname "{{network.Bridge}}" oifname != "{{network.Bridge}}" oifname "{{TempNames.BridgePrefix}}*" drop
            iifname "{{network.Bridge}}" accept
            oifname "{{network.Bridge}}" ct state established,related accept
            oifname "{{network.Bridge}}" drop
          }
        }

        """;

    public static async Task AddAsync(PrivateNetwork network, CancellationToken cancellationToken)
    {
        var file = Path.Combine(network.StateDir, "outbound.nft");
        using (var stream = NativeFile.CreateNoFollow(file))
            stream.Write(System.Text.Encoding.UTF8.GetBytes(Ruleset(network)));
        await HostCommand.RunCheckedAsync(Nft, ["-f", file], ErrorCodes.NetworkFailed, cancellationToken);
    }

    public static async Task<bool> ExistsAsync(string bridge, CancellationToken cancellationToken) =>
        ToolLocator.Find(Tool.Nft.Name) is { } nft && (await HostCommand.RunAsync(nft, ["list", "table", "ip", bridge], cancellationToken)).ExitCode == 0;

    public static async Task RemoveAsync(string bridge, CancellationToken cancellationToken)
    {
        if (await ExistsAsync(bridge, cancellationToken))
            await HostCommand.RunCheckedAsync(Nft, ["delete", "table", "ip", bridge], ErrorCodes.NetworkFailed, cancellationToken);
    }
}
