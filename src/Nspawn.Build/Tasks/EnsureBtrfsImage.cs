using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>Makes sure the chroots folder is on btrfs, mounting a loop file system on it where it is not.</summary>
public sealed class EnsureBtrfsImage : NspawnTask
{
    [Required] public string ChrootsDir { get; set; } = "";
    [Required] public string ImageFile { get; set; } = "";
    [Required] public string ImageSize { get; set; } = "";
    /// <summary>Unmount instead: let go of the loop file system that this task mounted.</summary>
    public bool Unmount { get; set; }

    private BtrfsStore Store() => new(Validate.AbsolutePath(ChrootsDir, "NspawnChrootsDir"),
        Validate.AbsolutePath(ImageFile, "NspawnBtrfsImageFile"), Validate.Size(ImageSize, "NspawnBtrfsImageSize"));

    protected override void Check() => Store().Check();

    protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var store = Store();
        if (Unmount)
        {
            Tools.RequireRoot();
            if (await store.UnmountAsync(cancellationToken))
                Progress($"Unmounted the btrfs loop file system from {store.ChrootsDir}.");
            return;
        }
        var state = await store.EnsureAsync(Progress, cancellationToken);
        Log.LogMessage(MessageImportance.Normal, $"{store.ChrootsDir} is on btrfs ({state}).");
    }
}
