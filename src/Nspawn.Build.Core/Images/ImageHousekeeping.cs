namespace Nspawn.Build;

/// <summary>What images and exports a chroots folder holds, and removing those a project no longer uses.</summary>
internal sealed class ImageHousekeeping(string chrootsDir, ImageCache? cache)
{
    /// <summary>The images (folders with our stamp), with size, age, stamp inputs and whether a machine runs from them.</summary>
    public IEnumerable<string> List(IReadOnlyList<ImageSpec> used)
    {
        foreach (var dir in Images())
        {
            var name = Path.GetFileName(dir);
            var stamp = Path.Combine(dir, ImageBuilder.StampPath);
            var age = DateTime.UtcNow - File.GetLastWriteTimeUtc(stamp);
            var state = InUse(dir) ? "in use" : used.Any(u => u.Name == name) ? "used by this project" : "not used by this project";
            yield return $"Image '{name}': {Size(dir) >> 20} MiB, built {age.TotalDays:0.#} days ago, {state}; {File.ReadAllText(stamp).Trim().Replace('\n', ';')}";
        }
        if (cache is not null && Directory.Exists(cache.CacheDir))
            foreach (var export in Directory.EnumerateFiles(cache.CacheDir, "*.btrfs.gz"))
                yield return $"Export '{Path.GetFileName(export)}': {new FileInfo(export).Length >> 20} MiB{(used.Any(u => cache.FileOf(u) == export) ? "" : ", stale")}";
    }

    /// <summary>
    /// Removes images this project does not use (save <paramref name="keep"/>) and this project's stale exports;
    /// never an image a machine runs from, nor anything that is not ours (a link, another project's export, a
    /// user's file), which goes to <paramref name="warn"/> where it looks like an image.
    /// </summary>
    public async Task<IReadOnlyList<string>> CleanAsync(IReadOnlyList<ImageSpec> used, IReadOnlyList<string> keep, Action<NspawnWarning> warn, CancellationToken cancellationToken)
    {
        var removed = new List<string>();
        foreach (var dir in Images(warn))
        {
            var name = Path.GetFileName(dir);
            if (used.Any(u => u.Name == name) || keep.Contains(name) || InUse(dir))
                continue;
            await Subvolumes.RemoveTreeAsync(chrootsDir, dir, cancellationToken);
            removed.Add($"image '{name}'");
        }
        if (cache is not null)
            foreach (var export in cache.StaleExports(used))
            {
                File.Delete(export);
                removed.Add($"export '{Path.GetFileName(export)}'");
            }
        return removed;
    }

    /// <summary>Real image folders with our stamp; a link among them (to another project's image) is never taken for one.</summary>
    private IEnumerable<string> Images(Action<NspawnWarning>? skipped = null) =>
        StoreEntry.Folders(chrootsDir, "*", skipped)
            .Where(d => !Path.GetFileName(d).StartsWith(".#", StringComparison.Ordinal) && StoreEntry.ReadStamp(d) is not null).Order();

    /// <summary>
    /// A machine runs from it, in either mode: a recorded machine whose build is alive, or one whose lock nspawn
    /// holds (its snapshot's, or the image's own for overlay machines); or a build is making it.
    /// </summary>
    private bool InUse(string dir)
    {
        var name = Path.GetFileName(dir);
        return MachineRegistry.List().Any(r => r.Machine.ImageDir == dir && r.OwnerAlive)
            || NspawnLocks.SnapshotHeld(chrootsDir, name) || NspawnLocks.ImageHeld(chrootsDir, name)
            || LockProbe.IsHeld(TempNames.BuildLock(chrootsDir, name));
    }

    private static long Size(string dir) =>
        new DirectoryInfo(dir).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true })
            .Sum(f => f.Length);
}
