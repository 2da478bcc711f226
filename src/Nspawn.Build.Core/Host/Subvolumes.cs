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

    /// <summary>
    /// Deletes an image or a half-made one from the store at <paramref name="root"/>: first what debootstrap left
    /// mounted in it, then the subvolume or folder. Only what <see cref="StoreEntry.WhyNotRemovable"/> allows (a real
    /// folder of ours, directly in the store, on its mount); anything else is left as it is, with NSPAWN0014.
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
        await RemoveCheckedAsync(full, FileStatus.Of(full)!.MountId, cancellationToken);
    }

    private static async Task RemoveCheckedAsync(string full, ulong mountId, CancellationToken cancellationToken)
    {
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
        if (FileStatus.Of(full) is not { IsDirectory: true })
            return;
        try
        {
            // .NET removes a link inside as a link, never what it points to.
            Directory.Delete(full, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A folder holding read-only subvolumes (a cache import cut short): those go one by one, real folders on this mount only.
            foreach (var child in Directory.GetDirectories(full))
                if (FileStatus.Of(child) is { IsDirectory: true } status && status.MountId == mountId)
                    await RemoveCheckedAsync(child, mountId, cancellationToken);
            Directory.Delete(full, recursive: true);
        }
    }
}
