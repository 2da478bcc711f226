namespace Nspawn.Build;

/// <summary>A project's settings, checked: the store, the images its machines use, how to start each machine, and their network.</summary>
internal sealed record ResolvedProject(StoreSettings Store, IReadOnlyList<ImageSpec> Images, IReadOnlyList<LaunchOptions> Machines, NetworkSettings Network)
{
    /// <summary>How many machines of the first machine's image are kept booted ahead for the tests (NspawnPoolSize).</summary>
    public int PoolSize { get; init; }
}
