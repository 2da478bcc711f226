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
    public TimeSpan BuildTimeout { get; init; } = Defaults.ImageBuildTimeout;

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
        var target = ImageDir(spec);
        if (FileStatus.Of(target) is not { } status)
            return;
        // Never replace what we did not make: it may be the user's, or a link to another project's image.
        if (!status.IsDirectory)
            throw new NspawnException(ErrorCodes.NotOurImage,
                $"'{target}' exists but is not a folder (a symlink, or a file), so Nspawn.Build did not make it. It was left as it is: move it away, or set NspawnImage to another name.");
        using var image = ImageRoot.Open(target);
        if (image.ReadAllText(StampPath) is null)
            throw new NspawnException(ErrorCodes.NotOurImage,
                $"'{target}' exists but was not made by Nspawn.Build (it has no {StampPath}). It was left as it is: move it away, or set NspawnImage to another name.");
    }

    public async Task<ImageResult> EnsureAsync(ImageSpec spec, Action<string> progress, CancellationToken cancellationToken)
    {
        Check(spec);
        if (spec.Base is { } baseSpec)
            await EnsureAsync(baseSpec, message => progress($"base image '{baseSpec.Name}': {message}"), cancellationToken);
        var result = await BuildUnlessUpToDateAsync(spec, progress, cancellationToken);
        if (Cache is not null && BtrfsStore.IsBtrfs(ChrootsDir) && await Cache.ExportAsync(ImageDir(spec), spec, cancellationToken))
            progress($"exported to {Cache.FileOf(spec)}");
        return result;
    }

    private async Task<ImageResult> BuildUnlessUpToDateAsync(ImageSpec spec, Action<string> progress, CancellationToken cancellationToken)
    {
        if (IsUpToDate(spec))
        {
            if (BtrfsStore.IsBtrfs(ImageDir(spec)) && !await Subvolumes.IsSubvolumeAsync(ImageDir(spec), cancellationToken))
                throw new NspawnException(ErrorCodes.NotOurImage,
                    $"The image '{ImageDir(spec)}' is a plain folder, not a btrfs subvolume, so every machine would copy it whole. It was left as it is: move it away and the next run builds a subvolume.");
            return ImageResult.UpToDate;
        }
        BtrfsStore.RequireWritable(ChrootsDir, "NspawnChrootsDir");
        BtrfsStore.RequireSpace(ChrootsDir, SpaceNeeded, $"Building image '{spec.Name}'");

        // One build of an image at a time; a second build waits, then finds it up to date.
        await using var imageLock = await FileLock.AcquireAsync(TempNames.BuildLock(ChrootsDir, spec.Name),
            () => progress($"waiting for another build of image '{spec.Name}' to finish"), cancellationToken);
        if (IsUpToDate(spec))
            return ImageResult.UpToDate;

        foreach (var stale in Directory.GetDirectories(ChrootsDir, $".#{spec.Name}.new-*"))
            await Subvolumes.RemoveTreeAsync(stale, CancellationToken.None);

        var tmp = TempNames.ImageTemp(ChrootsDir, spec.Name, ".new-");
        try
        {
            if (spec.Base is { } baseSpec)
            {
                progress($"a snapshot of image '{baseSpec.Name}'");
                await Subvolumes.SnapshotAsync(ImageDir(baseSpec), tmp, cancellationToken);
            }
            else if (BtrfsStore.IsBtrfs(ChrootsDir) && Cache is not null && await Cache.TryImportAsync(spec, tmp, progress, cancellationToken))
            {
                progress($"imported from {Cache.FileOf(spec)}");
                return await SwapInAsync(spec, tmp);
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
            return await SwapInAsync(spec, tmp);
        }
        finally
        {
            if (Directory.Exists(tmp))
                await Subvolumes.RemoveTreeAsync(tmp, CancellationToken.None);
        }
    }

    /// <summary>Puts a finished image in place; an old one is moved aside first and removed after (machines running from it keep their snapshots).</summary>
    private async Task<ImageResult> SwapInAsync(ImageSpec spec, string tmp)
    {
        var target = ImageDir(spec);
        string? old = null;
        if (Directory.Exists(target))
        {
            old = TempNames.ImageTemp(ChrootsDir, spec.Name, ".old-");
            Directory.Move(target, old);
        }
        Directory.Move(tmp, target);
        if (old is not null)
            await Subvolumes.RemoveTreeAsync(old, CancellationToken.None);
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
