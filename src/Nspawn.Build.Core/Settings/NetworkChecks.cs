namespace Nspawn.Build;

/// <summary>What a private network needs of the host, checked before anything is created: the tools, and a free subnet in the range.</summary>
internal static class NetworkChecks
{
    public static void Run(NetworkSettings network)
    {
        ToolLocator.Require(Tool.Ip);
        ToolLocator.Require(Tool.Nsenter);
        if (network.Outbound)
            ToolLocator.Require(Tool.Nft);
        // Checked again, under the lock, when the network is made: another build may take a subnet in between.
        var taken = HostRoutes.ReadAsync(CancellationToken.None).GetAwaiter().GetResult()
            .Concat(NetworkRegistry.List().Select(r => new TakenRange(r.Network.Range, $"the network {r.Network.Bridge} of another build"))).ToList();
        SubnetPicker.Pick(network.Range, taken);
    }
}
