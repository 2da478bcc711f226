namespace Nspawn.Build;

/// <summary>
/// Entries of the chroots folder seen as they are, never through a link. 'btrfs subvolume delete' resolves its
/// path and .NET lists a link to a folder as a folder, so a link there would make us delete what it points to
/// (another project's image, /var/lib/machines/*). Only a real folder directly in the store, on the store's own
/// mount, that is ours (an image with our stamp, a temporary folder we name, a snapshot nspawn made) is removed.
/// </summary>
internal static class StoreEntry
{
    /// <summary>Why <paramref name="dir"/> may not be removed from the store at <paramref name="root"/>; null when it may.</summary>
    public static string? WhyNotRemovable(string root, string dir)
    {
        // A trailing slash would make the kernel follow a link at the end of the path.
        dir = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));
        if (WhyNotReal(root, dir) is { } why)
            return why;
        return TempNames.IsOurs(Path.GetFileName(dir)) || ReadStamp(dir) is not null
            ? null
            : $"it has no {ImageBuilder.StampPath}, so it is not an image Nspawn.Build made";
    }

    /// <summary>
    /// Real folders directly in <paramref name="root"/> whose names match <paramref name="pattern"/>. A link or a
    /// mount point that matches is left alone and reported to <paramref name="skipped"/>; files are not folders.
    /// </summary>
    public static IReadOnlyList<string> Folders(string root, string pattern, Action<NspawnWarning>? skipped)
    {
        var folders = new List<string>();
        if (FileStatus.Of(root) is null)
            return folders;
        foreach (var entry in Directory.EnumerateFileSystemEntries(root, pattern))
        {
            var status = FileStatus.Of(entry);
            if (status is null || !(status.IsDirectory || status.IsSymlink))
                continue;
            if (WhyNotReal(root, entry) is { } why)
            {
                // A link to a file is no folder that we would ever have taken for one of ours.
                if (!status.IsSymlink || Directory.Exists(entry))
                    skipped?.Invoke(new NspawnWarning(ErrorCodes.LeftAlone, $"'{entry}' in the chroots folder was left alone: {why}. Nothing it points to was touched; remove it if it is not needed."));
                continue;
            }
            folders.Add(entry);
        }
        return folders;
    }

    /// <summary>
    /// An image's stamp, read without following a link out of it: etc/ must be a real folder and the stamp a
    /// regular file (the very one that is opened). Null when there is no such stamp.
    /// </summary>
    public static string? ReadStamp(string imageDir)
    {
        imageDir = Path.TrimEndingDirectorySeparator(imageDir);
        var etc = Path.Combine(imageDir, "etc");
        var path = Path.Combine(imageDir, ImageBuilder.StampPath);
        if (FileStatus.Of(imageDir) is not { IsDirectory: true } || FileStatus.Of(etc) is not { IsDirectory: true } || FileStatus.Of(path) is not { IsRegularFile: true } seen)
            return null;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read);
        if (!FileStatus.Of(stream.SafeFileHandle).IsSameAs(seen))
            return null;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>Removes the file <paramref name="path"/> of the store (a lock), by name in the store held open: a link is removed, never followed.</summary>
    public static void RemoveFile(string path)
    {
        if (FileStatus.Of(Path.GetDirectoryName(path) + "/.") is not { IsDirectory: true })
            return;
        using var store = NativeFile.Open(Path.GetDirectoryName(path) + "/.", NativeFile.ReadOnly | NativeFile.Directory);
        NativeFile.Unlink(store, Path.GetFileName(path));
    }

    /// <summary>Why <paramref name="dir"/> is not a real folder directly in <paramref name="root"/> and on its mount; null when it is.</summary>
    private static string? WhyNotReal(string root, string dir)
    {
        var status = FileStatus.Of(dir);
        if (status is null)
            return "it does not exist";
        if (status.IsSymlink)
            return $"it is a symbolic link (to '{new FileInfo(dir).LinkTarget}')";
        if (!status.IsDirectory)
            return "it is not a folder";
        // The store itself may be reached through a link of the user's ('/.' resolves it); its entries may not.
        var store = FileStatus.Of(Path.TrimEndingDirectorySeparator(root) + "/.");
        var parent = FileStatus.Of(Path.GetDirectoryName(dir) + "/.");
        if (store is null || parent is null || !parent.IsSameAs(store))
            return $"it is not directly in the chroots folder '{root}'";
        if (status.MountId != store.MountId)
            return "another file system is mounted on it";
        return null;
    }
}
