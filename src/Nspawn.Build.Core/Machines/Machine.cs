namespace Nspawn.Build;

/// <summary>A running ephemeral machine: all that is needed to reach it and to stop it, from this process or another.</summary>
internal sealed record Machine(
    string LogicalName,
    string Name,
    string Image,
    string ImageDir,
    int LeaderPid,
    ulong LeaderStartTime,
    int NspawnPid,
    ulong NspawnStartTime,
    string? Snapshot,
    string? Unit,
    IReadOnlyList<string> Cgroups)
{
    /// <summary>How long a stop waits for the guest to power off before it kills it (NspawnStopTimeout): every stop path uses it.</summary>
    public TimeSpan StopTimeout { get; init; } = Defaults.StopTimeout;

    /// <summary>Its address on a private network, which the host reaches it at; null on the host's network or none.</summary>
    public string? Address { get; init; }

    /// <summary>The bridge of that network, whose address it gives back when it stops.</summary>
    public string? Network { get; init; }

    /// <summary>The host folders it may write (writable binds): what root wrote there goes back to the sudo user when it stops.</summary>
    public IReadOnlyList<string> WritableBinds { get; init; } = [];

    /// <summary>The record of a machine about to start, before nspawn runs: enough for the reaper to clean up after a crash.</summary>
    public static Machine Starting(LaunchOptions options, string? unit, IReadOnlyList<string> cgroups) =>
        new(options.LogicalName, options.MachineName, options.Image, options.ImageDir, 0, 0, 0, 0, null, unit, cgroups)
        {
            StopTimeout = options.StopTimeout,
            Address = options.Attachment?.Address,
            Network = options.Attachment?.Network.Bridge,
            WritableBinds = options.Binds.Where(b => !b.ReadOnly).Select(b => b.Source).ToList(),
        };
}
