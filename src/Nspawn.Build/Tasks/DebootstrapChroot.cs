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

    [Output] public string ImageDir { get; private set; } = "";

    private ImageSpec Spec() => ImageSpec.Create(Image, Suite, Mirror, Variant, Include) with
    {
        Slim = Validate.Choice(Slim, "NspawnSlimBoot", ("true", true), ("false", false)),
    };

    protected override void Check()
    {
        new ImageBuilder(Validate.AbsolutePath(ChrootsDir, "NspawnChrootsDir")).Check(Spec());
    }

    protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var spec = Spec();
        var builder = new ImageBuilder(Validate.AbsolutePath(ChrootsDir, "NspawnChrootsDir"));
        ImageDir = builder.ImageDir(spec);
        var started = DateTime.UtcNow;
        var result = await builder.EnsureAsync(spec, message => Progress($"Image '{spec.Name}': {message}"), cancellationToken);
        if (result == ImageResult.UpToDate)
            Log.LogMessage(MessageImportance.High, $"Image '{spec.Name}' is up to date ({spec.Suite}, {spec.Variant}): {ImageDir}");
        else
            Progress($"Image '{spec.Name}' built in {(DateTime.UtcNow - started).TotalSeconds:0} s: {ImageDir}");
    }
}
