using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// Image folders in the store: btrfs subvolumes where the chroots folder is on btrfs, plain folders where
/// it is not (overlay machines). Creating, snapshotting and removing them goes through here.
/// </summary>
internal static class Subvolumes
{
    public static async Task CreateAsync(string dir, CancellationToken cancellationToken)
    {
        if (BtrfsStore.IsBtrfs(Path.GetDirectoryName(dir)!))
            await HostCommand.RunCheckedAsync(ToolLocator.Require(Tool.Btrfs), ["-q", "subvolume", "create", dir], ErrorCodes.BtrfsFailed, cancellationToken);
        else
            Directory.CreateDirectory(dir);
    }

    /// <summary>A writable copy of <paramref name="source"/> (instant on btrfs, a reflink copy elsewhere); read-only when asked (for btrfs send).</summary>
    public static async Task SnapshotAsync(string source, string target, CancellationToken cancellationToken, bool readOnly = false)
    {
        if (BtrfsStore.IsBtrfs(source))
            await HostCommand.RunCheckedAsync(ToolLocator.Require(Tool.Btrfs), ["-q", "subvolume", "snapshot", .. readOnly ? new[] { "-r" } : [], source, target],
                ErrorCodes.BtrfsFailed, cancellationToken);
        else
            await HostCommand.RunCheckedAsync(ToolLocator.Require(Tool.Cp), ["-a", "--reflink=auto", "--", source, target], ErrorCodes.BtrfsFailed, cancellationToken);
    }

    /// <summary>
    /// On btrfs an image must be a subvolume: --ephemeral snapshots it instead of copying it whole. A folder on btrfs is
    /// the root of a subvolume when its inode is 256 (BTRFS_FIRST_FREE_OBJECTID), which is how btrfs-progs tells; a
    /// statx, not a 'btrfs subvolume show' at every build. A link is none.
    /// </summary>
    public static bool IsSubvolume(string dir) => FileStatus.Of(dir) is { IsDirectory: true, Inode: 256 };

    /// <summary>
    /// Deletes an image or a half-made one from the store at <paramref name="root"/>: first what debootstrap left
    /// mounted in it, then the subvolume or folder. Only what <see cref="StoreEntry.WhyNotRemovable"/> allows (a real
    /// folder of ours, directly in the store, on its mount); anything else is left as it is, with NSPAWN0014. The store
    /// may be the user's to write: the folder is deleted by name in the store held open, and what is in it by name in
    /// its folders held open, so a link swapped in anywhere on the way is removed as a link, never followed.
    /// </summary>
    public static async Task RemoveTreeAsync(string root, string dir, CancellationToken cancellationToken)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));
        if (FileStatus.Of(full) is null)
            return;
        if (StoreEntry.WhyNotRemovable(root, full) is { } why)
            throw new NspawnException(ErrorCodes.NotOurImage, $"'{full}' was not removed: {why}. It was left as it is.");
        foreach (var m in MountTable.Read().Where(m => MountTable.IsUnder(m.MountPoint, full) && m.MountPoint != full).Reverse())
            await HostCommand.RunCheckedAsync(ToolLocator.Require(Tool.Umount), ["--lazy", "--", m.MountPoint], ErrorCodes.BtrfsFailed, cancellationToken);
        using var store = NativeFile.Open(Path.GetDirectoryName(full) + "/.", NativeFile.ReadOnly | NativeFile.Directory);
        var name = Path.GetFileName(full);
        // The very folder that was checked, seen in the store held open.
        if (FileStatus.Of(store, name) is not { } status)
            return;
        if (!status.IsDirectory || FileStatus.Of(full) is not { } checkedOne || !checkedOne.IsSameAs(status))
            throw new NspawnException(ErrorCodes.NotOurImage, $"'{full}' was not removed: it changed while it was looked at. It was left as it is.");
        try
        {
            if (Remove(store, name, status.MountId))
            {
                // btrfs frees the space in the background after a commit: commit now and wait for it, so the next image finds it free.
                NativeFile.SyncBtrfs(store);
                if (ToolLocator.Find(Tool.Btrfs.Name) is { } btrfs)
                    await HostCommand.RunAsync(btrfs, ["-q", "subvolume", "sync", Path.GetDirectoryName(full)!], cancellationToken);
            }
        }
        catch (IOException e)
        {
            throw new NspawnException(ErrorCodes.HostFileFailed, $"'{full}' could not be removed: {e.Message}");
        }
    }

    /// <summary>
    /// Removes the folder <paramref name="name"/> of <paramref name="parent"/>: whole where it is a btrfs subvolume, else entry by entry
    /// (subvolumes in it whole: a cache import cut short leaves read-only ones), each folder opened without following a link and
    /// never on another mount. True when a subvolume went.
    /// </summary>
    private static bool Remove(SafeFileHandle parent, string name, ulong mountId)
    {
        if (NativeFile.DestroySubvolume(parent, name))
            return true;
        var subvolumes = false;
        using (var dir = NativeFile.Open(name, NativeFile.ReadOnly | NativeFile.Directory, parent))
        {
            if (FileStatus.Of(dir).MountId != mountId)
                throw new IOException($"another file system is mounted on '{name}'");
            foreach (var child in NativeFile.Names(dir))
                if (FileStatus.Of(dir, child) is { IsDirectory: true })
                    subvolumes |= Remove(dir, child, mountId);
                else
                    NativeFile.Unlink(dir, child);
        }
        NativeFile.RemoveDirectory(parent, name);
        return subvolumes;
    }
}
