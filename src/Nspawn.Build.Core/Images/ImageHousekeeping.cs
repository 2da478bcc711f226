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

    /// <summary>Removes images this project does not use (save <paramref name="keep"/>) and stale exports; never an image a machine runs from.</summary>
    public async Task<IReadOnlyList<string>> CleanAsync(IReadOnlyList<ImageSpec> used, IReadOnlyList<string> keep, CancellationToken cancellationToken)
    {
        var removed = new List<string>();
        foreach (var dir in Images())
        {
            var name = Path.GetFileName(dir);
            if (used.Any(u => u.Name == name) || keep.Contains(name) || InUse(dir))
                continue;
            await Subvolumes.RemoveTreeAsync(dir, cancellationToken);
            removed.Add($"image '{name}'");
        }
        if (cache is not null && Directory.Exists(cache.CacheDir))
            foreach (var export in Directory.EnumerateFiles(cache.CacheDir, "*.btrfs.gz").Where(e => !used.Any(u => cache.FileOf(u) == e)))
            {
                File.Delete(export);
                removed.Add($"export '{Path.GetFileName(export)}'");
            }
        return removed;
    }

    private IEnumerable<string> Images() =>
        Directory.Exists(chrootsDir)
            ? Directory.EnumerateDirectories(chrootsDir).Where(d => !Path.GetFileName(d).StartsWith(".#") && File.Exists(Path.Combine(d, ImageBuilder.StampPath))).Order()
            : [];

    /// <summary>A machine runs from it: a recorded machine whose build is alive or that was kept, or a snapshot whose lock nspawn holds.</summary>
    private bool InUse(string dir) =>
        MachineRegistry.List().Any(r => r.Machine.ImageDir == dir && (r.OwnerAlive || r.Kept))
        || Directory.EnumerateFiles(chrootsDir, $".#.#machine.{Path.GetFileName(dir)}*.lck").Any(LockProbe.IsHeld)
        || LockProbe.IsHeld(TempNames.BuildLock(chrootsDir, Path.GetFileName(dir)));

    private static long Size(string dir) =>
        new DirectoryInfo(dir).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true })
            .Sum(f => f.Length);
}
