namespace Nspawn.Build;

/// <summary>Something a build should hear about but need not fail for (a foreign record, a damaged cache); the tasks log it with its code.</summary>
internal sealed record NspawnWarning(string Code, string Message);
