namespace Nspawn.Build;

/// <summary>
/// The one place where device nodes work for a folder of the store: debootstrap makes and opens device nodes in a
/// new image, which the store's nodev mount forbids, so it works through a bind mount of that folder with devices
/// allowed, under a folder of root's in /run, unmounted when it is done (the reaper unmounts one a killed build left).
/// </summary>
internal sealed class DeviceMount : IAsyncDisposable
{
    public static string Root => Path.Combine(MachineLauncher.StateDir, "debootstrap");

    private DeviceMount(string path) => Where = path;

    /// <summary>Where the folder is seen with devices allowed.</summary>
    public string Where { get; }

    public static async Task<DeviceMount> CreateAsync(string dir, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var path = Directory.CreateDirectory(System.IO.Path.Combine(Root, System.IO.Path.GetFileName(dir))).FullName;
        var mount = new DeviceMount(path);
        try
        {
            await HostCommand.RunCheckedAsync(ToolLocator.Require(Tool.Mount), ["--bind", "--", dir, path], ErrorCodes.BtrfsFailed, cancellationToken);
            await HostCommand.RunCheckedAsync(ToolLocator.Require(Tool.Mount), ["-o", "remount,bind,dev", "--", path], ErrorCodes.BtrfsFailed, cancellationToken);
            return mount;
        }
        catch
        {
            await mount.DisposeAsync();
            throw;
        }
    }

    /// <summary>Unmounts it, with whatever was mounted below it (debootstrap's /proc and /sys), and removes its folder.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var m in MountTable.Read().Where(m => MountTable.IsUnder(m.MountPoint, Where)).Select(m => m.MountPoint).Distinct().Reverse().ToList())
            await HostCommand.RunAsync(ToolLocator.Require(Tool.Umount), ["--lazy", "--", m], CancellationToken.None);
        if (Directory.Exists(Where))
            Directory.Delete(Where);
    }

    /// <summary>The device mounts that a killed build left: those whose image folder no build holds the lock of.</summary>
    public static IEnumerable<DeviceMount> Stale(IEnumerable<string> chrootsDirs) =>
        Directory.Exists(Root)
            ? Directory.EnumerateDirectories(Root).Where(d => TempNames.ImageOfTemp(System.IO.Path.GetFileName(d)) is not { } image
                    || !chrootsDirs.Any(c => LockProbe.IsHeld(TempNames.BuildLock(c, image))))
                .Select(d => new DeviceMount(d)).ToList()
            : [];
}
