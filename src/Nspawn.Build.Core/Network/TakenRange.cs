namespace Nspawn.Build;

/// <summary>Addresses the host already uses, and why (a route, an address, a name server, another build's network): for an error message.</summary>
internal sealed record TakenRange(Ipv4Range Range, string What);
