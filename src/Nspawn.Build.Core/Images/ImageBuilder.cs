namespace Nspawn.Build;

/// <summary>
/// Makes images in the chroots folder with debootstrap (or from the cache, or from a base image): into a
/// temporary subvolume first, renamed into place only when it is complete, so an interrupted build never
/// leaves a half image under the real name.
/// </summary>
internal sealed class ImageBuilder(string chrootsDir)
{
    public const string StampPath = "etc/nspawn-build.stamp";

    /// <summary>A minbase image with systemd takes about 250 MiB; debootstrap needs room for the packages too.</summary>
    public const long SpaceNeeded = 512L << 20;

    public string ChrootsDir { get; } = chrootsDir;

    /// <summary>Rebuild an image older than this (to pick up security updates); never when null.</summary>
    public TimeSpan? MaxAge { get; init; }

    /// <summary>Where finished images are exported to and imported from ('btrfs send' streams); none when null.</summary>
    public ImageCache? Cache { get; init; }

    /// <summary>How long debootstrap, or a setup script, may take before it is stopped.</summary>
    public TimeSpan BuildTimeout { get; init; } = Settings.ImageBuildTimeout.Default;

    /// <summary>The images the project uses (with their bases) and those it keeps: a store too full says what NspawnCleanImages would free.</summary>
    public IReadOnlyList<ImageSpec> ProjectImages { get; init; } = [];
    public IReadOnlyList<string> KeepImages { get; init; } = [];
    /// <summary>Where what the build need not fail for goes (a cached image that was not used, an export that failed).</summary>
    public Action<NspawnWarning> Warn { get; set; } = _ => { };

    public string ImageDir(ImageSpec spec) => Path.Combine(ChrootsDir, spec.Name);

    public bool IsUpToDate(ImageSpec spec)
    {
        if (FileStatus.Of(ImageDir(spec)) is not { IsDirectory: true })
            return false;
        using var image = ImageRoot.Open(ImageDir(spec));
        return image.ReadAllText(StampPath) == spec.Stamp
            && !(MaxAge is { } max && DateTime.UtcNow - image.LastWriteTimeUtc(StampPath) > max);
    }

    /// <summary>
    /// What <see cref="EnsureAsync"/> would do, so that each long phase can run as a target of its own (Terminal
    /// Logger shows the running target): "up-to-date", "import" (its export is in the cache) or "build".
    /// </summary>
    public string Plan(ImageSpec spec) =>
        IsUpToDate(spec) ? "up-to-date"
        : spec.Base is null && Cache is not null && BtrfsStore.IsBtrfs(ChrootsDir) && File.Exists(Cache.FileOf(spec)) ? "import"
        : "build";

    /// <summary>Everything that can be checked before anything is created; the folder may not be mounted yet.</summary>
    public void Check(ImageSpec spec)
    {
        Privilege.RequireRoot();
        // An image that is there already needs no debootstrap (a loop-mounted folder may not be mounted yet: then it is required).
        if (!IsUpToDate(spec))
            ToolLocator.Require(Tool.Debootstrap);
        RequireOursOrNone(ImageDir(spec));
    }

    /// <summary>Never replace what we did not make: a folder of the user's, or a link, which the delete would follow into another project's image.</summary>
    private void RequireOursOrNone(string target)
    {
        if (FileStatus.Of(target) is not null && StoreEntry.WhyNotRemovable(ChrootsDir, target) is { } why)
            throw new NspawnException(ErrorCodes.NotOurImage,
                $"'{target}' exists but was not made by Nspawn.Build: {why}. It was left as it is: move it away, or set NspawnImage to another name.");
    }

    public async Task<ImageResult> EnsureAsync(ImageSpec spec, Action<string> progress, CancellationToken cancellationToken)
    {
        Check(spec);
        if (spec.Base is { } baseSpec)
            await EnsureAsync(baseSpec, message => progress($"base image '{baseSpec.Name}': {message}"), cancellationToken);
        var result = await BuildUnlessUpToDateAsync(spec, progress, cancellationToken);
        if (Cache is not null && BtrfsStore.IsBtrfs(ChrootsDir))
            await ExportAsync(Cache, spec, progress, cancellationToken);
        return result;
    }

    /// <summary>The cache only saves time: an export that fails is a warning, and the build goes on.</summary>
    private async Task ExportAsync(ImageCache cache, ImageSpec spec, Action<string> progress, CancellationToken cancellationToken)
    {
        try
        {
            if (await cache.ExportAsync(ImageDir(spec), spec, cancellationToken))
                progress($"exported to {cache.FileOf(spec)}");
        }
        catch (Exception e) when (e is NspawnException or IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception or CliWrap.Exceptions.CliWrapException)
        {
            Warn(new NspawnWarning(ErrorCodes.CacheExportFailed,
                $"Image '{spec.Name}' could not be exported to NspawnImageCacheDir '{cache.CacheDir}': {e.Message} The build goes on without it; check that the folder can be written."));
        }
    }

    private async Task<ImageResult> BuildUnlessUpToDateAsync(ImageSpec spec, Action<string> progress, CancellationToken cancellationToken)
    {
        if (IsUpToDate(spec))
        {
            if (BtrfsStore.IsBtrfs(ImageDir(spec)) && !Subvolumes.IsSubvolume(ImageDir(spec)))
                throw new NspawnException(ErrorCodes.NotOurImage,
                    $"The image '{ImageDir(spec)}' is a plain folder, not a btrfs subvolume, so every machine would copy it whole. It was left as it is: move it away and the next run builds a subvolume.");
            return ImageResult.UpToDate;
        }
        BtrfsStore.RequireWritable(ChrootsDir, "NspawnChrootsDir");
        await RequireSpaceAsync(spec, cancellationToken);

        // One build of an image at a time; a second build waits, then finds it up to date.
        await using var imageLock = await FileLock.AcquireAsync(TempNames.BuildLock(ChrootsDir, spec.Name),
            () => progress($"waiting for another build of image '{spec.Name}' to finish"), BuildTimeout, $"Waiting for another build of image '{spec.Name}' (NspawnImageBuildTimeout)", cancellationToken);
        if (IsUpToDate(spec))
            return ImageResult.UpToDate;

        foreach (var stale in StoreEntry.Folders(ChrootsDir, $".#{spec.Name}.new-*", Warn))
            await Subvolumes.RemoveTreeAsync(ChrootsDir, stale, CancellationToken.None);

        var tmp = TempNames.ImageTemp(ChrootsDir, spec.Name, ".new-");
        try
        {
            if (spec.Base is { } baseSpec)
            {
                progress($"a snapshot of image '{baseSpec.Name}'");
                await Subvolumes.SnapshotAsync(ImageDir(baseSpec), tmp, cancellationToken);
            }
            else if (BtrfsStore.IsBtrfs(ChrootsDir) && Cache is not null && await Cache.TryImportAsync(spec, tmp, Warn, cancellationToken))
            {
                progress($"imported from {Cache.FileOf(spec)}");
                return await SwapInAsync(spec, tmp, progress);
            }
            else
            {
                await Subvolumes.CreateAsync(tmp, cancellationToken);
                await Debootstrap.RunAsync(spec, tmp, progress, BuildTimeout, cancellationToken);
            }

            // Every write resolves its path inside the new image: a link in it (or in its base) never leads to the host.
            using (var image = ImageRoot.Open(tmp))
            {
                // debootstrap copies the host's hostname; systemd fills an empty machine-id afresh at each boot.
                image.ReplaceFile("/etc/hostname", spec.Name + "\n");
                image.ReplaceFile("/etc/machine-id", "");
                foreach (var file in spec.Files)
                    image.CopyFrom(file.Source, file.Destination);
            }
            if (spec.SetupScript is { } script)
                await SetupScript.RunAsync(tmp, script, line => progress("setup: " + line), BuildTimeout, cancellationToken);
            using (var image = ImageRoot.Open(tmp))
            {
                if (spec.Slim)
                    Slim(image);
                image.ReplaceFile(StampPath, spec.Stamp);
            }
            return await SwapInAsync(spec, tmp, progress);
        }
        finally
        {
            await Subvolumes.RemoveTreeAsync(ChrootsDir, tmp, CancellationToken.None);
        }
    }

    /// <summary>
    /// Throws NSPAWN0013 when the store has no room for a new image beside the others (measured after btrfs has
    /// finished removing what was just removed), with the images and the ways out; or when the host has no room
    /// left for the sparse loop file to fill.
    /// </summary>
    private async Task RequireSpaceAsync(ImageSpec spec, CancellationToken cancellationToken)
    {
        var what = $"Building image '{spec.Name}'";
        var free = await BtrfsStore.FreeSpaceAsync(ChrootsDir, cancellationToken);
        if (free < SpaceNeeded)
            throw new NspawnException(ErrorCodes.NoSpace, await new ImageHousekeeping(ChrootsDir, Cache)
                .FullStoreMessageAsync(what, SpaceNeeded, free, ProjectImages, KeepImages, cancellationToken));
        if (BtrfsStore.LoopOf(ChrootsDir) is { } loop)
            BtrfsStore.RequireSpace(loop.HostDir, SpaceNeeded, $"{what} in the sparse btrfs loop file '{loop.File}', which takes the host's disk as it fills,");
    }

    /// <summary>
    /// Puts a finished image in place; an old one is moved aside first and removed after. Snapshot machines keep
    /// their snapshots, but overlay machines run from the old image itself: while nspawn holds its lock, the old
    /// image stays aside, and the reaper of a later run removes it once they are gone.
    /// </summary>
    private async Task<ImageResult> SwapInAsync(ImageSpec spec, string tmp, Action<string> progress)
    {
        var target = ImageDir(spec);
        string? old = null;
        // Checked again: it may have changed while the image was built.
        RequireOursOrNone(target);
        if (FileStatus.Of(target) is not null)
        {
            old = TempNames.ImageTemp(ChrootsDir, spec.Name, ".old-");
            Directory.Move(target, old);
        }
        Directory.Move(tmp, target);
        if (old is not null && NspawnLocks.ImageHeld(ChrootsDir, spec.Name))
            progress($"the old image stays aside as '{old}' while machines run from it; a later run removes it");
        else if (old is not null)
            await Subvolumes.RemoveTreeAsync(ChrootsDir, old, CancellationToken.None);
        return ImageResult.Built;
    }

    /// <summary>Masks the units of <see cref="ImageSpec.SlimMasks"/> in an image (a link to /dev/null, as systemctl mask makes).</summary>
    public static void Slim(string imageDir)
    {
        using var image = ImageRoot.Open(imageDir);
        Slim(image);
    }

    private static void Slim(ImageRoot image)
    {
        foreach (var unit in ImageSpec.SlimMasks)
            image.ReplaceWithSymlink("/etc/systemd/system/" + unit, "/dev/null");
    }
}
