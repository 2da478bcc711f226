using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// What a guest's root changed in a writable bind (a folder of the sudo user's), made harmless before the user gets it
/// back. Without a user namespace the guest's root is the host's: a device node it made opens the host's disk to whoever
/// may open the node, and a set-id file, or one with capabilities, runs with its owner's rights (root's, or another user's)
/// for whoever runs it, whoever owns the name the user sees; a second link kept such a file from being given back, not
/// from being run. With a user namespace and rootidmap, guest-root's files are the user's on disk, nodes and set-id files
/// too. So, whoever owns it and however many links it has, an entry changed since the run began never stays a device
/// node nor set-id: a node is removed (never opened), a regular file loses its set-id bits and its capabilities.
/// </summary>
internal static class BindGiveBack
{
    private const UnixFileMode SetId = UnixFileMode.SetUser | UnixFileMode.SetGroup;

    /// <summary>
    /// Makes the entry <paramref name="name"/> of <paramref name="dir"/> harmless, <paramref name="entry"/> being an O_PATH
    /// handle of it and <paramref name="status"/> what it is; false when it was removed.
    /// </summary>
    public static bool Disarm(SafeFileHandle dir, string name, SafeFileHandle entry, FileStatus status)
    {
        if (status.IsDevice)
        {
            // By name, so only while the name is still that node.
            if (FileStatus.Of(dir, name) is { } now && now.IsSameAs(status))
                NativeFile.Unlink(dir, name);
            return false;
        }
        if (status.IsRegularFile)
        {
            using var file = NativeFile.Reopen(entry, NativeFile.ReadOnly | NativeFile.NonBlock);
            // An immutable file keeps its bits, its capabilities and its owner: the guest's root may set the flag.
            NativeFile.ClearImmutable(file);
            if ((status.Permissions & SetId) != 0)
                NativeFile.ChangeMode(file, status.Permissions & ~SetId);
            NativeFile.RemoveCapabilities(file);
        }
        return true;
    }

    /// <summary>Lets a folder changed in the run change again (its owner, its entries): the guest's root may have made it immutable to keep a node in it.</summary>
    public static void Unlock(SafeFileHandle dir) => NativeFile.ClearImmutable(dir);
}
