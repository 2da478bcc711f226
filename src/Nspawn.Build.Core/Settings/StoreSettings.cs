namespace Nspawn.Build;

/// <summary>Where the images live and how machines get their copies: resolved once, used by every step.</summary>
internal sealed record StoreSettings(string ChrootsDir, string ImageFile, long ImageSize, EphemeralMode Mode)
{
    /// <summary>Rebuild an image older than this; never when null.</summary>
    public TimeSpan? MaxAge { get; init; }
    /// <summary>How long debootstrap, or a setup script, may take.</summary>
    public TimeSpan BuildTimeout { get; init; } = Settings.ImageBuildTimeout.Default;
    /// <summary>Where images are exported to and imported from between runs; none when null.</summary>
    public string? CacheDir { get; init; }
    /// <summary>Images NspawnCleanImages keeps although this project does not use them.</summary>
    public IReadOnlyList<string> KeepImages { get; init; } = [];

    public BtrfsStore Store() => new(ChrootsDir, ImageFile, ImageSize);

    /// <summary>The image builder of this store; <paramref name="images"/> are the images the project uses (for what a full store says).</summary>
    public ImageBuilder Builder(IEnumerable<ImageSpec>? images = null) => new(ChrootsDir)
    {
        MaxAge = MaxAge, BuildTimeout = BuildTimeout, Cache = CacheDir is null ? null : new ImageCache(CacheDir) { Limit = BuildTimeout },
        ProjectImages = ImageHousekeeping.WithBases(images ?? []), KeepImages = KeepImages,
    };
}
