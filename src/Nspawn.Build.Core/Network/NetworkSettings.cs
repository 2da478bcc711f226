namespace Nspawn.Build;

/// <summary>How a build's machines are networked (NspawnNetwork, NspawnNetworkRange, NspawnNetworkOutbound), checked.</summary>
internal sealed record NetworkSettings(NetworkMode Mode, Ipv4Range Range, bool Outbound);
