namespace Nspawn.Build.Tests;

/// <summary>Machines without btrfs: overlay mode on a plain folder, and the slim image setting.</summary>
[Collection(MachinesCollection.Name)]
public sealed class OverlayTests(PackageFixture package) : IAsyncLifetime
{
    // On the root file system (not btrfs): a plain-folder copy of the image, as an overlay-mode build would make it.
    private readonly string _plainChroots = Path.Combine("/var/tmp", "nspawn-overlay-" + Guid.NewGuid().ToString("N")[..8], "test_chroots");
    private string PlainImage => Path.Combine(_plainChroots, "bookworm");

    public async Task InitializeAsync()
    {
        await package.FirstRunAsync();
        Directory.CreateDirectory(_plainChroots);
        await Cli.Wrap("cp").WithArguments(["-a", "--", Repo.ImageDir, _plainChroots]).ExecuteBufferedAsync();
        Assert.False(BtrfsStore.IsBtrfs(_plainChroots));
    }

    public Task DisposeAsync()
    {
        // A plain folder, not an image of a store: .NET removes it without following a link.
        Directory.Delete(Path.GetDirectoryName(_plainChroots)!, recursive: true);
        Leaks.AssertNone();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task The_sample_runs_in_overlay_machines_with_no_loop_file()
    {
        var run = await package.RunSampleAsync(["-p:NspawnEphemeralMode=overlay", $"-p:NspawnChrootsDir={_plainChroots}"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        run.AssertMatches($@"Passed!\s+- Failed:\s+0, Passed:\s+{PackageFixture.SampleTests}");
        Assert.False(File.Exists(Path.Combine(_plainChroots, "btrfs.img")));
        Assert.False(BtrfsStore.IsBtrfs(_plainChroots));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Overlay_images_are_not_exported_to_the_cache()
    {
        var work = Path.GetDirectoryName(_plainChroots)!;
        var cache = Path.Combine(work, "cache");
        var project = new ConsumerProject(package, Directory.CreateDirectory(Path.Combine(work, "project")).FullName, _plainChroots, properties: $"<NspawnImageCacheDir>{cache}</NspawnImageCacheDir>");
        // The plain image is up to date: the images step would export it if it exported overlay images.
        var overlay = await project.RunAsync(["-t:NspawnPrepareImages", "-p:NspawnEphemeralMode=overlay"]);
        Assert.True(overlay.ExitCode == 0, overlay.ToString());
        Assert.Contains("Image 'bookworm' is up to date", overlay.Output);
        Assert.DoesNotContain("NSPAWN0063", overlay.Output);
        Assert.False(Directory.Exists(cache) && Directory.EnumerateFileSystemEntries(cache).Any(), "an overlay image was exported");
        // The same step on the btrfs store exports the same image.
        var snapshot = await project.RunAsync(["-t:NspawnPrepareImages", "-p:NspawnEphemeralMode=snapshot", $"-p:NspawnChrootsDir={Repo.ChrootsDir}"]);
        Assert.True(snapshot.ExitCode == 0, snapshot.ToString());
        Assert.Single(Directory.GetFiles(cache, "bookworm-*.btrfs.gz"));
    }

    [Fact]
    public async Task Auto_mode_picks_overlay_where_there_is_no_btrfs()
    {
        var run = await package.RunSampleAsync(["-p:NspawnEphemeralMode=auto", $"-p:NspawnChrootsDir={_plainChroots}"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.False(File.Exists(Path.Combine(_plainChroots, "btrfs.img")));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Overlay_machines_share_one_read_only_image_and_write_to_memory()
    {
        var before = File.GetLastWriteTimeUtc(Path.Combine(PlainImage, "etc"));
        var machines = await Task.WhenAll(Enumerable.Range(0, 3).Select(i =>
            EphemeralMachine.StartAsync(new StartOptions { ImageDir = PlainImage, LogicalName = $"ov{i}" })));
        try
        {
            foreach (var m in machines)
            {
                await m.WriteAllTextAsync("/etc/written-by-test", m.Name);
                Assert.Equal(m.Name, await m.ReadAllTextAsync("/etc/written-by-test"));
                Assert.Contains("overlay", (await m.ExecCheckedAsync("findmnt", "-n", "-o", "FSTYPE", "/")).StandardOutput);
            }
        }
        finally
        {
            foreach (var m in machines)
                await m.DisposeAsync();
        }
        Assert.False(File.Exists(Path.Combine(PlainImage, "etc/written-by-test")));
        Assert.Equal(before, File.GetLastWriteTimeUtc(Path.Combine(PlainImage, "etc")));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_slim_image_masks_what_a_test_machine_does_not_need_and_still_boots_to_running()
    {
        await using var slim = await TempImage.SnapshotAsync("slim");
        ImageBuilder.Slim(slim.Dir);
        await using var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = slim.Dir, LogicalName = "slim" });
        Assert.True(await machine.IsSystemRunningAsync(degradedIsRunning: false));
        foreach (var unit in ImageSpec.SlimMasks)
            Assert.Equal("masked", (await machine.ExecAsync("systemctl", "is-enabled", unit)).StandardOutput.Trim());
    }
}
