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

    /// <summary>On btrfs an image must be a subvolume: --ephemeral snapshots it instead of copying it whole.</summary>
    public static async Task<bool> IsSubvolumeAsync(string dir, CancellationToken cancellationToken) =>
        (await HostCommand.RunAsync(ToolLocator.Require(Tool.Btrfs), ["subvolume", "show", dir], cancellationToken)).ExitCode == 0;

    /// <summary>Deletes an image or a half-made one: first what debootstrap left mounted in it, then the subvolume or folder.</summary>
    public static async Task RemoveTreeAsync(string dir, CancellationToken cancellationToken)
    {
        var full = Path.GetFullPath(dir);
        foreach (var m in MountTable.Read().Where(m => MountTable.IsUnder(m.MountPoint, full) && m.MountPoint != full).Reverse())
            await HostCommand.RunCheckedAsync(ToolLocator.Require(Tool.Umount), ["--lazy", "--", m.MountPoint], ErrorCodes.BtrfsFailed, cancellationToken);
        if (ToolLocator.Find(Tool.Btrfs.Name) is { } btrfs && BtrfsStore.IsBtrfs(full))
        {
            var r = await HostCommand.RunAsync(btrfs, ["-q", "subvolume", "delete", "--commit-after", full], cancellationToken);
            if (r.ExitCode == 0)
            {
                // btrfs frees the space in the background after the commit: wait for it (quick after --commit-after), so the next image finds it free.
                await HostCommand.RunAsync(btrfs, ["-q", "subvolume", "sync", Path.GetDirectoryName(full)!], cancellationToken);
                return;
            }
        }
        if (!Directory.Exists(full))
            return;
        try
        {
            Directory.Delete(full, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A folder holding read-only subvolumes (a cache import cut short): those go one by one.
            foreach (var child in Directory.GetDirectories(full))
                await RemoveTreeAsync(child, cancellationToken);
            Directory.Delete(full, recursive: true);
        }
    }
}
