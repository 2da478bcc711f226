namespace Nspawn.Build.Tests;

/// <summary>
/// The loop file that is mounted is the very file that was checked: a user who can write the folder of the loop
/// file swaps it between the check and the mount, and still the checked one is mounted. Needs root and btrfs-progs;
/// everything is in a temporary folder of its own, unmounted at the end (the loop devices go with their mounts).
/// </summary>
public sealed class LoopMountTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-loopmount-").FullName;

    private string ChrootsDir => Path.Combine(_dir, "test_chroots");
    private string ImageFile => Path.Combine(_dir, "btrfs.img");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var mount in MountTable.Read().Select(m => m.MountPoint).Where(m => MountTable.IsUnder(m, _dir)).Reverse())
            await Shell.RunAsync("umount", ["--lazy", mount]);
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>The loop devices that read a file of this test's folder.</summary>
    private List<string> LoopDevices() =>
        Directory.EnumerateDirectories("/sys/block", "loop*")
            .Where(d => File.Exists(Path.Combine(d, "loop/backing_file")) && File.ReadAllText(Path.Combine(d, "loop/backing_file")).StartsWith(_dir + "/", StringComparison.Ordinal))
            .ToList();

    [Fact]
    public async Task A_loop_file_swapped_after_its_check_is_not_what_gets_mounted()
    {
        var store = new BtrfsStore(ChrootsDir, ImageFile, 256L << 20);
        await store.EnsureAsync(_ => { }, _ => { }, CancellationToken.None);
        Assert.Equal(ImageFile, Build.LoopFile.MountedOn(ChrootsDir)?.File);
        Assert.Equal(UnmountResult.Unmounted, await store.UnmountAsync(CancellationToken.None));

        // A user's own btrfs file system, swapped in for the checked one once it has been checked (as the build says it mounts).
        var planted = Path.Combine(_dir, "planted.img");
        await using (var file = File.Create(planted))
            file.SetLength(256L << 20);
        Assert.Equal(0, (await Shell.RunAsync("mkfs.btrfs", ["-q", "-L", "planted", planted])).ExitCode);
        File.SetUnixFileMode(planted, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        Assert.Equal(0, (await Shell.RunAsync("chown", ["1000:1000", planted])).ExitCode);
        var checkedOne = ImageFile + ".checked";
        var swapped = false;
        await store.EnsureAsync(line =>
        {
            if (line.StartsWith("Mounting", StringComparison.Ordinal))
            {
                File.Move(ImageFile, checkedOne);
                File.Move(planted, ImageFile);
                swapped = true;
            }
        }, _ => { }, CancellationToken.None);
        Assert.True(swapped);
        Assert.Equal(checkedOne, Build.LoopFile.MountedOn(ChrootsDir)?.File);
        var label = await Shell.RunAsync("btrfs", ["filesystem", "label", ChrootsDir]);
        Assert.Equal("test_chroots", label.Output.Trim());

        Assert.Equal(UnmountResult.Unmounted, await store.UnmountAsync(CancellationToken.None));
        Assert.True(await Shell.WaitUntilAsync(() => LoopDevices().Count == 0, TimeSpan.FromSeconds(10)), "a loop device outlived its mount: " + string.Join(", ", LoopDevices()));
    }

    [Fact]
    public async Task A_loop_file_that_is_not_roots_is_refused_through_the_open_file()
    {
        await using (var file = File.Create(ImageFile))
            file.SetLength(256L << 20);
        Assert.Equal(0, (await Shell.RunAsync("mkfs.btrfs", ["-q", ImageFile])).ExitCode);
        Assert.Equal(0, (await Shell.RunAsync("chown", ["1000:1000", ImageFile])).ExitCode);
        var store = new BtrfsStore(ChrootsDir, ImageFile, 256L << 20);
        var e = Assert.Throws<NspawnException>(() => store.OpenLoopFile().Dispose());
        Assert.Equal(ErrorCodes.NotBtrfs, e.Code);
        Assert.Empty(LoopDevices());
    }
}
