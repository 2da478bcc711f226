namespace Nspawn.Build;

/// <summary>Picks a build's subnet: the first /24 of the range (or the whole range, when it is that small) that nothing on the host uses.</summary>
internal static class SubnetPicker
{
    public const int PrefixLength = 24;

    public static Ipv4Range Pick(Ipv4Range range, IReadOnlyList<TakenRange> taken)
    {
        foreach (var subnet in range.Subnets(PrefixLength))
            if (!taken.Any(t => t.Range.Overlaps(subnet)))
                return subnet;
        if (range.PrefixLength >= PrefixLength)
        {
            var used = taken.First(t => t.Range.Overlaps(range));
            throw new NspawnException(ErrorCodes.BadNetworkRange,
                $"NspawnNetworkRange '{range}' is in use on the host: it overlaps {used.Range}, {used.What}. Set NspawnNetworkRange to a private range that the host does not route.");
        }
        throw new NspawnException(ErrorCodes.BadNetworkRange,
            $"Every /{PrefixLength} of NspawnNetworkRange '{range}' is in use on the host (routes, addresses, name servers or other builds' networks). Set NspawnNetworkRange to a private range that the host does not route.");
    }
}
