namespace Nspawn.Build.Tests;

/// <summary>
/// A btrfs loop store of a test's own, in a temporary folder, with copies of the repository's image in it
/// (btrfs send and receive): everything it mounted is unmounted, and its loop devices go, even when the test fails.
/// </summary>
public sealed class TestStore : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-store-").FullName;

    public string ChrootsDir => Path.Combine(_dir, "test_chroots");
    public string LoopFile => Path.Combine(ChrootsDir, "btrfs.img");
    public string ImageDir(string name) => Path.Combine(ChrootsDir, name);

    internal BtrfsStore Store(long size) => new(ChrootsDir, LoopFile, size);

    public static async Task<TestStore> CreateAsync(long size)
    {
        var store = new TestStore();
        try
        {
            await store.EnsureAsync(size);
            return store;
        }
        catch
        {
            await store.DisposeAsync();
            throw;
        }
    }

    /// <summary>EnsureAsync with this size: what it logged, and what it warned.</summary>
    public async Task<(List<string> Log, List<string> Warnings)> EnsureAsync(long size)
    {
        var (log, warnings) = (new List<string>(), new List<string>());
        await Store(size).EnsureAsync(log.Add, warnings.Add, CancellationToken.None);
        return (log, warnings);
    }

    /// <summary>A full copy (not a snapshot: it shares nothing) of the repository's image under <paramref name="name"/>.</summary>
    public async Task CopyImageAsync(string name)
    {
        var frozen = TempNames.ImageTemp(Repo.ChrootsDir, "teststore", ".send-");
        var received = Path.Combine(ChrootsDir, Path.GetFileName(frozen));
        try
        {
            await Cli.Wrap("btrfs").WithArguments(["-q", "subvolume", "snapshot", "-r", Repo.ImageDir, frozen]).ExecuteBufferedAsync();
            await (Cli.Wrap("btrfs").WithArguments(["send", "-q", frozen]) | Cli.Wrap("btrfs").WithArguments(["receive", ChrootsDir])).ExecuteAsync();
            // A received subvolume is read-only: the image is a writable snapshot of it.
            await Cli.Wrap("btrfs").WithArguments(["-q", "subvolume", "snapshot", received, ImageDir(name)]).ExecuteBufferedAsync();
        }
        finally
        {
            await Subvolumes.RemoveTreeAsync(Path.GetDirectoryName(received)!, received, CancellationToken.None);
            await Subvolumes.RemoveTreeAsync(Path.GetDirectoryName(frozen)!, frozen, CancellationToken.None);
        }
    }

    public static Task<long> FreeAsync(string dir) => BtrfsStore.FreeSpaceAsync(dir, CancellationToken.None);

    /// <summary>The loop device's size and the size btrfs has on it.</summary>
    public async Task<(long Device, long FileSystem)> SizesAsync()
    {
        var device = Assert.IsType<Build.LoopFile.Device>(Build.LoopFile.MountedOn(ChrootsDir, LoopFile));
        var show = (await Cli.Wrap("btrfs").WithArguments(["filesystem", "show", "--raw", ChrootsDir]).ExecuteBufferedAsync()).StandardOutput;
        return (device.Capacity, long.Parse(System.Text.RegularExpressions.Regex.Match(show, @"devid\s+1\s+size\s+(\d+)").Groups[1].Value));
    }

    public async Task UnmountAsync()
    {
        foreach (var mount in MountTable.Read().Select(m => m.MountPoint).Where(m => MountTable.IsUnder(m, _dir)).Reverse())
            if ((await Shell.RunAsync("umount", [mount])).ExitCode != 0)
                await Shell.RunAsync("umount", ["--lazy", mount]);
    }

    public async ValueTask DisposeAsync()
    {
        await UnmountAsync();
        Directory.Delete(_dir, recursive: true);
    }
}
