using System.Globalization;

namespace Nspawn.Build;

/// <summary>What images and exports a chroots folder holds, and removing those a project no longer uses.</summary>
internal sealed class ImageHousekeeping(string chrootsDir, ImageCache? cache)
{
    /// <summary>One image: its size, what removing it would free (its own data: a snapshot or a running machine shares the rest), and who uses it.</summary>
    public sealed record Usage(string Name, string Dir, long Size, long Own, string State, bool Removable)
    {
        public string Describe() => $"{Size >> 20} MiB ({Own >> 20} MiB its own), {State}";
    }

    /// <summary>The images a project uses: its machines' images and the bases they derive from.</summary>
    public static IReadOnlyList<ImageSpec> WithBases(IEnumerable<ImageSpec> specs) => specs.SelectMany(Lineage).ToList();

    private static IEnumerable<ImageSpec> Lineage(ImageSpec spec) => spec.Base is null ? [spec] : [spec, .. Lineage(spec.Base)];

    /// <summary>The images (folders with our stamp) with their figures; <see cref="Usage.Removable"/> is what NspawnCleanImages would remove.</summary>
    public async Task<IReadOnlyList<Usage>> ImagesAsync(IReadOnlyList<ImageSpec> used, IReadOnlyList<string> keep, CancellationToken cancellationToken)
    {
        var dirs = Images().ToList();
        var sizes = await SizesAsync(dirs, cancellationToken);
        return dirs.Select((dir, i) =>
        {
            var name = Path.GetFileName(dir);
            var (state, removable) = InUse(dir) ? ("in use (a machine runs from it, or a build makes it)", false)
                : used.Any(u => u.Name == name) ? ("used by this project", false)
                : keep.Contains(name) ? ("not used by this project, kept (NspawnKeepImages)", false)
                : ("not used by this project", true);
            return new Usage(name, dir, sizes[i].Size, sizes[i].Own, state, removable);
        }).ToList();
    }

    /// <summary>The store's free space and size, each image with its figures, the exports, and what NspawnCleanImages would remove.</summary>
    public async Task<IReadOnlyList<string>> ListAsync(IReadOnlyList<ImageSpec> used, IReadOnlyList<string> keep, CancellationToken cancellationToken)
    {
        var lines = new List<string>();
        if (!Directory.Exists(chrootsDir))
            return lines;
        var images = await ImagesAsync(used, keep, cancellationToken);
        lines.Add($"Store '{chrootsDir}': {await BtrfsStore.FreeSpaceAsync(chrootsDir, cancellationToken) >> 20} MiB free{StoreKind()}.");
        foreach (var image in images)
        {
            var stamp = Path.Combine(image.Dir, ImageBuilder.StampPath);
            var age = DateTime.UtcNow - File.GetLastWriteTimeUtc(stamp);
            lines.Add($"Image '{image.Name}': {image.Size >> 20} MiB ({image.Own >> 20} MiB its own), built {age.TotalDays.ToString("0.#", CultureInfo.InvariantCulture)} days ago, {image.State}; " +
                File.ReadAllText(stamp).Trim().Replace('\n', ';'));
        }
        if (cache is not null && Directory.Exists(cache.CacheDir))
            foreach (var export in Directory.EnumerateFiles(cache.CacheDir, "*.btrfs.gz"))
                lines.Add($"Export '{Path.GetFileName(export)}': {new FileInfo(export).Length >> 20} MiB{(used.Any(u => cache.FileOf(u) == export) ? "" : ", stale")}");
        lines.Add(CleanWouldFree(images) + ".");
        return lines;
    }

    /// <summary>
    /// The message of a store too full for a new image (NSPAWN0013): the images with their figures, and the
    /// ways out: NspawnCleanImages (what it would free) and, for a loop file, a larger NspawnBtrfsImageSize.
    /// </summary>
    public async Task<string> FullStoreMessageAsync(string what, long needed, long free, IReadOnlyList<ImageSpec> used, IReadOnlyList<string> keep, CancellationToken cancellationToken)
    {
        var images = await ImagesAsync(used, keep, cancellationToken);
        var text = new System.Text.StringBuilder(
            $"{what} needs {needed >> 20} MiB but only {free >> 20} MiB are free in '{chrootsDir}'{StoreKind()}.");
        text.Append(images.Count == 0 ? " It holds no image." : " Its images:");
        foreach (var image in images)
            text.Append($"\n  '{image.Name}': {image.Describe()}");
        text.Append("\nWays out:\n  - ").Append(CleanWouldFree(images))
            .Append(" (dotnet build -t:NspawnCleanImages; NspawnKeepImages names images to keep);\n  - ");
        if (BtrfsStore.LoopOf(chrootsDir) is { } loop)
        {
            var larger = Math.Max(2 * loop.Size, loop.Size + needed - free + (1L << 30));
            text.Append($"a larger NspawnBtrfsImageSize than the loop file's {loop.Size >> 20} MiB (for example -p:NspawnBtrfsImageSize={(larger + (1L << 30) - 1) >> 30}G): " +
                "the next run grows the file to it in place, keeping every image; the file is sparse, so the host's disk pays only for what images use.");
        }
        else
            text.Append("free some space on that file system, or set NspawnChrootsDir to a folder with more room.");
        return text.ToString();
    }

    private string StoreKind() =>
        BtrfsStore.LoopOf(chrootsDir) is { } loop
            ? $" of {loop.Size >> 20} MiB (the btrfs loop file '{loop.File}'; a larger NspawnBtrfsImageSize grows it)"
            : "";

    private static string CleanWouldFree(IReadOnlyList<Usage> images) =>
        images.Where(i => i.Removable).ToList() is { Count: > 0 } removable
            ? $"NspawnCleanImages would remove {string.Join(", ", removable.Select(i => $"'{i.Name}'"))} and free at least {removable.Sum(i => i.Own) >> 20} MiB"
            : "NspawnCleanImages would remove no image (each is used by this project, kept, or in use)";

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
        return MachineRegistry.List().Any(r => r.Machine.ImageDir == dir && (r.OwnerAlive || r.Kept))
            || NspawnLocks.SnapshotHeld(chrootsDir, name) || NspawnLocks.ImageHeld(chrootsDir, name)
            || LockProbe.IsHeld(TempNames.BuildLock(chrootsDir, name));
    }

    /// <summary>
    /// Each image's size and its own part: on btrfs from 'btrfs filesystem du' (Total, Exclusive: what is
    /// shared with a snapshot, another image or a running machine is not freed by removing it); elsewhere the
    /// files' sizes, all its own.
    /// </summary>
    private static async Task<IReadOnlyList<(long Size, long Own)>> SizesAsync(IReadOnlyList<string> dirs, CancellationToken cancellationToken)
    {
        if (dirs.Count > 0 && BtrfsStore.IsBtrfs(dirs[0]) && ToolLocator.Find(Tool.Btrfs.Name) is { } btrfs)
        {
            var r = await HostCommand.RunAsync(btrfs, ["filesystem", "du", "-s", "--raw", .. dirs], cancellationToken);
            var rows = r.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1)
                .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
            if (r.ExitCode == 0 && rows.Count == dirs.Count && rows.All(f => f.Length >= 4 && long.TryParse(f[0], out _) && long.TryParse(f[1], out _)))
                return rows.Select(f => (long.Parse(f[0], CultureInfo.InvariantCulture), long.Parse(f[1], CultureInfo.InvariantCulture))).ToList();
        }
        return dirs.Select(dir => { var size = FileSizes(dir); return (size, size); }).ToList();
    }

    private static long FileSizes(string dir) =>
        new DirectoryInfo(dir).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true })
            .Sum(f => f.Length);
}
