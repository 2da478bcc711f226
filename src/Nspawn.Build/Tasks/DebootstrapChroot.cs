using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// Builds the resolved images with debootstrap (or from the cache, or from a base image), unless their
/// stamps say they are up to date; or lists the images there are (and the machines kept running from them), or removes those the project does not use.
/// </summary>
public sealed class DebootstrapChroot : NspawnTask
{
    /// <summary>ResolveNspawnSettings' Store.</summary>
    [Required] public ITaskItem[] Store { get; set; } = [];
    /// <summary>ResolveNspawnSettings' Images: the images the machines use.</summary>
    public ITaskItem[] Images { get; set; } = [];
    /// <summary>The project (MSBuildProjectFullPath), for the command that stops kept machines.</summary>
    public string ProjectFile { get; set; } = "";
    /// <summary>
    /// ensure (the default), list (the images and exports there are), clean (remove those this project does not
    /// use), or plan (say in Planned what ensure would do to each image).
    /// </summary>
    public string Action { get; set; } = "ensure";

    /// <summary>With plan: the Images, each with Step metadata "up-to-date", "import" or "build".</summary>
    [Output] public ITaskItem[] Planned { get; private set; } = [];

    private protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var settings = ResolvedItems.ToStore(Store);
        var specs = Images.Select(ResolvedItems.ToImage).ToList();
        var action = Validate.Choice(Action, "Action", ("ensure", 0), ("list", 1), ("clean", 2), ("plan", 3));
        if (action == 3)
        {
            var planner = settings.Builder();
            Planned = Images.Select(image =>
            {
                var planned = new Microsoft.Build.Utilities.TaskItem(image);
                planned.SetMetadata("Step", planner.Plan(ResolvedItems.ToImage(image)));
                return (ITaskItem)planned;
            }).ToArray();
            return;
        }
        if (action > 0)
        {
            Privilege.RequireRoot();
            var housekeeper = new ImageHousekeeping(settings.ChrootsDir, settings.Builder().Cache);
            var used = ImageHousekeeping.WithBases(specs);
            if (action == 1)
                foreach (var line in (await housekeeper.ListAsync(used, settings.KeepImages, cancellationToken)).Concat(KeptMachines.In(settings.ChrootsDir).Select(m => KeptMachines.Describe(m, ProjectFile))))
                    Log.LogMessage(MessageImportance.High, line);
            else
                foreach (var removed in await housekeeper.CleanAsync(used, settings.KeepImages, LogWarning, cancellationToken))
                    Progress($"Removed {removed}.");
            return;
        }
        var builder = settings.Builder(specs);
        builder.Warn = LogWarning;
        foreach (var spec in specs)
        {
            var started = DateTime.UtcNow;
            var result = await builder.EnsureAsync(spec, message => Progress($"Image '{spec.Name}': {message}"), cancellationToken);
            if (result == ImageResult.UpToDate)
                Log.LogMessage(MessageImportance.High, $"Image '{spec.Name}' is up to date ({(spec.Base is null ? spec.Suite : "from " + spec.Base.Name)}, {spec.Variant}): {builder.ImageDir(spec)}");
            else
                Progress($"Image '{spec.Name}' built in {(DateTime.UtcNow - started).TotalSeconds:0} s: {builder.ImageDir(spec)}");
        }
    }
}
