namespace Nspawn.Testing;

/// <summary>How to boot a machine of the test's own.</summary>
public sealed record StartOptions
{
    /// <summary>The image folder; by default the image of the machine ContainerTest started.</summary>
    public string? ImageDir { get; init; }
    /// <summary>A plain name, part of the machine name.</summary>
    public string LogicalName { get; init; } = Nspawn.Build.Defaults.OwnMachineName;
    /// <summary>By default 60 s.</summary>
    public TimeSpan? BootTimeout { get; init; }
    /// <summary>How long a stop waits for the guest to power off before it kills it; by default ContainerTest's NspawnStopTimeout, else 15 s.</summary>
    public TimeSpan? StopTimeout { get; init; }
    /// <summary>Snapshot or overlay; by default snapshot where the image is on btrfs, overlay elsewhere.</summary>
    public EphemeralMode? Mode { get; init; }
    /// <summary>
    /// The host's network, the private network of ContainerTest's machines (joined: an address on it, a name the
    /// others resolve), or none. By default the same as ContainerTest's machines, else the host's.
    /// </summary>
    public NetworkMode? Network { get; init; }
    /// <summary>Host folders or files in the machine, read-only unless a bind says otherwise.</summary>
    public IReadOnlyList<Bind> Binds { get; init; } = [];
    /// <summary>
    /// Whether the guest's root is an unprivileged host UID (a user namespace). By default as ContainerTest's machines
    /// (NspawnPrivateUsers), else true. false is unsafe: the guest's root is then the host's root, which only a machine
    /// that must do what only host root can (mount the host's file systems, make devices) should be given.
    /// </summary>
    public bool? PrivateUsers { get; init; }
    /// <summary>More nspawn options, such as "--bind-ro=/srv/data".</summary>
    public IReadOnlyList<string> NspawnArguments { get; init; } = [];
    /// <summary>
    /// Gets each line of the machine's console (its boot first, then what the guest writes to /dev/console), as
    /// plain text, until the machine is stopped; on another thread, and what it throws is ignored.
    /// </summary>
    public Action<string>? OnConsole { get; init; }
}
