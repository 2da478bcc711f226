using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// Builds images with debootstrap (or from the cache, or from a base image), unless their stamps say they
/// are up to date. The plain properties describe one image, <see cref="Image"/>; NspawnImageDefinition
/// items describe others, each metadata falling back to the plain property.
/// </summary>
public sealed class DebootstrapChroot : NspawnTask
{
    [Required] public string ChrootsDir { get; set; } = "";
    [Required] public string Image { get; set; } = "";
    public string Suite { get; set; } = "";
    [Required] public string Mirror { get; set; } = "";
    [Required] public string Variant { get; set; } = "";
    public string Include { get; set; } = "";
    /// <summary>Mask what a test machine does not need, for a faster boot (ImageSpec.SlimMasks).</summary>
    public string Slim { get; set; } = "false";
    public string Exclude { get; set; } = "";
    public string Arch { get; set; } = "";
    public string Components { get; set; } = "";
    /// <summary>A script run inside the new image; relative to BaseDir.</summary>
    public string SetupScript { get; set; } = "";
    /// <summary>Files copied into <see cref="Image"/>: Identity the host file, metadata Destination an absolute path in the image.</summary>
    public ITaskItem[] Files { get; set; } = [];
    /// <summary>Rebuild an image older than this ('7d', '12h'); empty: never.</summary>
    public string MaxAge { get; set; } = "";
    /// <summary>The project's folder, for relative paths.</summary>
    public string BaseDir { get; set; } = "";
    /// <summary>The images to make sure of (the machines' images); <see cref="Image"/> when none.</summary>
    public ITaskItem[] Images { get; set; } = [];
    /// <summary>
    /// NspawnImageDefinition items: Include the image name; metadata Suite, Mirror, Variant, Packages, ExcludePackages,
    /// Components, Arch, SetupScript, Slim, BaseImage (Include and Exclude are taken by MSBuild itself, hence Packages).
    /// </summary>
    public ITaskItem[] Definitions { get; set; } = [];
    /// <summary>Where images are exported to and imported from between runs; none when empty.</summary>
    public string CacheDir { get; set; } = "";
    /// <summary>ensure (the default), list (the images and exports there are), or clean (remove those this project does not use).</summary>
    public string Action { get; set; } = "ensure";
    /// <summary>With clean: images to keep although this project does not use them (other projects' images).</summary>
    public string Keep { get; set; } = "";

    private string BaseDirOrCurrent => string.IsNullOrEmpty(BaseDir) ? Directory.GetCurrentDirectory() : BaseDir;

    private IEnumerable<string> Wanted => Images.Length > 0 ? Images.Select(i => i.ItemSpec).Distinct() : [Image];

    private ImageSpec SpecOf(string name, IReadOnlyList<string> derivedFrom)
    {
        if (derivedFrom.Contains(name))
            throw new NspawnException(ErrorCodes.BadOption, $"NspawnImageDefinition '{name}' is its own base ({string.Join(" -> ", derivedFrom.Append(name))}). Break the loop of BaseImage.");
        var definition = Definitions.FirstOrDefault(d => d.ItemSpec == name);
        string Value(string metadata, string fallback) =>
            definition?.GetMetadata(metadata) is { Length: > 0 } value ? value : fallback;
        var main = name == Image;
        var script = Value("SetupScript", main ? SetupScript : "");
        var baseImage = definition?.GetMetadata("BaseImage") ?? "";
        return ImageSpec.Create(name, Value("Suite", main ? Suite : name), Value("Mirror", Mirror), Value("Variant", Variant), Value("Packages", Include)) with
        {
            Slim = Validate.Choice(Value("Slim", Slim), "NspawnSlimBoot", ("true", true), ("false", false)),
            Exclude = Validate.Packages(Value("ExcludePackages", Exclude), "NspawnExclude"),
            Arch = Validate.Word(Value("Arch", Arch), "NspawnArch"),
            Components = Validate.Words(Value("Components", Components), "NspawnComponents"),
            SetupScript = string.IsNullOrWhiteSpace(script) ? null : Validate.InputFile(script, BaseDirOrCurrent, "NspawnSetupScript"),
            Files = !main ? [] : Files.Select(f => (Validate.InputFile(f.GetMetadata("FullPath"), BaseDirOrCurrent, "NspawnImageFiles"),
                Validate.ImagePath(f.GetMetadata("Destination"), $"The Destination of NspawnImageFiles '{f.ItemSpec}'"))).ToList(),
            Base = baseImage == "" ? null : SpecOf(Validate.ImageName(baseImage, $"The BaseImage of NspawnImageDefinition '{name}'"), [.. derivedFrom, name]),
        };
    }

    private static IEnumerable<ImageSpec> Lineage(ImageSpec spec) => spec.Base is null ? [spec] : [spec, .. Lineage(spec.Base)];

    private ImageBuilder Builder() =>
        new(Validate.AbsolutePath(ChrootsDir, "NspawnChrootsDir"))
        {
            MaxAge = Validate.MaxAge(MaxAge, "NspawnImageMaxAge"),
            Cache = string.IsNullOrWhiteSpace(CacheDir) ? null : new ImageCache(Validate.AbsolutePath(CacheDir, "NspawnImageCacheDir")),
        };

    protected override void Check()
    {
        var builder = Builder();
        foreach (var name in Wanted)
            builder.Check(SpecOf(name, []));
    }

    protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var action = Validate.Choice(Action, "Action", ("ensure", 0), ("list", 1), ("clean", 2));
        if (action > 0)
        {
            Tools.RequireRoot();
            var wanted = Wanted.Select(name => SpecOf(name, [])).SelectMany(Lineage).ToList();
            var housekeeper = new ImageHousekeeping(Validate.AbsolutePath(ChrootsDir, "NspawnChrootsDir"), Builder().Cache);
            if (action == 1)
                foreach (var line in housekeeper.List(wanted))
                    Log.LogMessage(MessageImportance.High, line);
            else
                foreach (var removed in await housekeeper.CleanAsync(wanted, Validate.Words(Keep, "NspawnKeepImages"), cancellationToken))
                    Progress($"Removed {removed}.");
            return;
        }
        var builder = Builder();
        foreach (var spec in Wanted.Select(name => SpecOf(name, [])).ToList())
        {
            var imageDir = builder.ImageDir(spec);
            var started = DateTime.UtcNow;
            var result = await builder.EnsureAsync(spec, message => Progress($"Image '{spec.Name}': {message}"), cancellationToken);
            if (result == ImageResult.UpToDate)
                Log.LogMessage(MessageImportance.High, $"Image '{spec.Name}' is up to date ({(spec.Base is null ? spec.Suite : "from " + spec.Base.Name)}, {spec.Variant}): {imageDir}");
            else
                Progress($"Image '{spec.Name}' built in {(DateTime.UtcNow - started).TotalSeconds:0} s: {imageDir}");
        }
    }
}
