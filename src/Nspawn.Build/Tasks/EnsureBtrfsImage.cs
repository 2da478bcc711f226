using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>Makes sure the chroots folder is on btrfs, mounting a loop file system on it where it is not.</summary>
public sealed class EnsureBtrfsImage : NspawnTask
{
    [Required] public string ChrootsDir { get; set; } = "";
    [Required] public string ImageFile { get; set; } = "";
    [Required] public string ImageSize { get; set; } = "";
    /// <summary>snapshot (btrfs, the default), overlay (a plain folder will do), or auto.</summary>
    public string EphemeralMode { get; set; } = "snapshot";
    /// <summary>Unmount instead: let go of the loop file system that this task mounted.</summary>
    public bool Unmount { get; set; }

    private BtrfsStore Store() => new(Validate.AbsolutePath(ChrootsDir, "NspawnChrootsDir"),
        Validate.AbsolutePath(ImageFile, "NspawnBtrfsImageFile"), Validate.Size(ImageSize, "NspawnBtrfsImageSize"));

    private bool Overlay(BtrfsStore store) =>
        EphemeralModes.Resolve(EphemeralMode, store.ChrootsDir, store.ImageFile) == Nspawn.Build.EphemeralMode.Overlay;

    protected override void Check()
    {
        var store = Store();
        if (Overlay(store))
            Tools.RequireRoot();
        else
            store.Check();
    }

    protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var store = Store();
        var key = "Nspawn.Build.InUse:" + store.ChrootsDir;
        if (Unmount)
        {
            Tools.RequireRoot();
            // This build's own hold must not keep the file system busy.
            (BuildEngine4.UnregisterTaskObject(key, RegisteredTaskObjectLifetime.Build) as IDisposable)?.Dispose();
            switch (await store.UnmountAsync(cancellationToken))
            {
                case BtrfsStore.UnmountResult.Unmounted:
                    Progress($"Unmounted the btrfs loop file system from {store.ChrootsDir}.");
                    break;
                case BtrfsStore.UnmountResult.Busy:
                    Progress($"{store.ChrootsDir} is still in use by another build or a running machine: left mounted.");
                    break;
            }
            return;
        }
        if (Overlay(store))
        {
            store.EnsurePlain();
            Log.LogMessage(MessageImportance.Normal, $"{store.ChrootsDir} holds plain image folders for overlay machines.");
            return;
        }
        var state = await store.EnsureAsync(Progress, cancellationToken);
        if (BuildEngine4.GetRegisteredTaskObject(key, RegisteredTaskObjectLifetime.Build) is null)
            BuildEngine4.RegisterTaskObject(key, store.HoldInUse(), RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
        Log.LogMessage(MessageImportance.Normal, $"{store.ChrootsDir} is on btrfs ({state}).");
    }
}
