using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>Makes sure the chroots folder is on btrfs, mounting a loop file system on it where it is not.</summary>
public sealed class EnsureBtrfsImage : NspawnTask
{
    /// <summary>ResolveNspawnSettings' Store.</summary>
    [Required] public ITaskItem[] Store { get; set; } = [];
    /// <summary>Unmount instead: let go of the loop file system that this task mounted.</summary>
    public bool Unmount { get; set; }

    private protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var settings = ResolvedItems.ToStore(Store);
        var store = settings.Store();
        var key = "Nspawn.Build.InUse:" + store.ChrootsDir;
        if (Unmount)
        {
            Privilege.RequireRoot();
            // This build's own hold must not keep the file system busy.
            (BuildEngine4.UnregisterTaskObject(key, RegisteredTaskObjectLifetime.Build) as IDisposable)?.Dispose();
            switch (await store.UnmountAsync(cancellationToken))
            {
                case UnmountResult.Unmounted:
                    Progress($"Unmounted the btrfs loop file system from {store.ChrootsDir}.");
                    break;
                case UnmountResult.Busy:
                    Progress($"{store.ChrootsDir} is still in use by another build or a running machine: left mounted.");
                    break;
            }
            return;
        }
        if (settings.Mode == EphemeralMode.Overlay)
        {
            store.EnsurePlain();
            Log.LogMessage(MessageImportance.Normal, $"{store.ChrootsDir} holds plain image folders for overlay machines.");
            return;
        }
        var state = await store.EnsureAsync(Progress, message => Log.LogWarning(null, ErrorCodes.LoopFileKept, null, null, 0, 0, 0, 0, message), cancellationToken);
        if (BuildEngine4.GetRegisteredTaskObject(key, RegisteredTaskObjectLifetime.Build) is null)
            BuildEngine4.RegisterTaskObject(key, store.HoldInUse(), RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
        Log.LogMessage(MessageImportance.Normal, $"{store.ChrootsDir} is on btrfs ({state}).");
    }
}
