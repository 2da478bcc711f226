// Public (the tests see it): in the tests' namespace, though Core defines it for the tasks too.
namespace Nspawn.Testing;

/// <summary>How a machine gets its own copy of the image.</summary>
public enum EphemeralMode
{
    /// <summary>--ephemeral on btrfs: an instant snapshot, removed at stop (the seed's way).</summary>
    Snapshot,
    /// <summary>--volatile=overlay --read-only: the image stays read-only, writes go to a tmpfs.</summary>
    Overlay,
}
