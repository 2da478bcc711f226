namespace Nspawn.Build;

/// <summary>What every machine of a warm pool is booted with: a test whose options ask for the same gets one of them.</summary>
internal sealed record PoolTemplate(string ImageDir, EphemeralMode Mode, TimeSpan StopTimeout, NetworkMode Network, bool PrivateUsers, string LogicalName = Defaults.OwnMachineName);
