using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>Builds an image with debootstrap, unless its stamp says it is up to date.</summary>
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
    /// <summary>Files copied into the image: Identity the host file, metadata Destination an absolute path in the image.</summary>
    public ITaskItem[] Files { get; set; } = [];
    /// <summary>Rebuild an image older than this ('7d', '12h'); empty: never.</summary>
    public string MaxAge { get; set; } = "";
    /// <summary>The project's folder, for relative paths.</summary>
    public string BaseDir { get; set; } = "";

    [Output] public string ImageDir { get; private set; } = "";

    private ImageSpec Spec() => ImageSpec.Create(Image, Suite, Mirror, Variant, Include) with
    {
        Slim = Validate.Choice(Slim, "NspawnSlimBoot", ("true", true), ("false", false)),
        Exclude = Validate.Packages(Exclude, "NspawnExclude"),
        Arch = Validate.Word(Arch, "NspawnArch"),
        Components = Validate.Words(Components, "NspawnComponents"),
        SetupScript = string.IsNullOrWhiteSpace(SetupScript) ? null : Validate.InputFile(SetupScript, BaseDirOrCurrent, "NspawnSetupScript"),
        Files = Files.Select(f => (Validate.InputFile(f.GetMetadata("FullPath"), BaseDirOrCurrent, "NspawnImageFiles"),
            Validate.ImagePath(f.GetMetadata("Destination"), $"The Destination of NspawnImageFiles '{f.ItemSpec}'"))).ToList(),
    };

    private string BaseDirOrCurrent => string.IsNullOrEmpty(BaseDir) ? Directory.GetCurrentDirectory() : BaseDir;

    private ImageBuilder Builder() =>
        new(Validate.AbsolutePath(ChrootsDir, "NspawnChrootsDir")) { MaxAge = Validate.MaxAge(MaxAge, "NspawnImageMaxAge") };

    protected override void Check()
    {
        Builder().Check(Spec());
    }

    protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var spec = Spec();
        var builder = Builder();
        ImageDir = builder.ImageDir(spec);
        var started = DateTime.UtcNow;
        var result = await builder.EnsureAsync(spec, message => Progress($"Image '{spec.Name}': {message}"), cancellationToken);
        if (result == ImageResult.UpToDate)
            Log.LogMessage(MessageImportance.High, $"Image '{spec.Name}' is up to date ({spec.Suite}, {spec.Variant}): {ImageDir}");
        else
            Progress($"Image '{spec.Name}' built in {(DateTime.UtcNow - started).TotalSeconds:0} s: {ImageDir}");
    }
}
