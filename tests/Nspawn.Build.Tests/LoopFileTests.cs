using Microsoft.Build.Framework;
using Nspawn.Build.Tasks;
using Xunit.Abstractions;

namespace Nspawn.Build.Tests;

/// <summary>The loop file grows in place when NspawnBtrfsImageSize says so; a full store says what to do.</summary>
[Collection(MachinesCollection.Name)]
public sealed class LoopFileTests(PackageFixture package, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-loop-").FullName;

    public async Task InitializeAsync() => await package.RequireImageAsync();

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_loop_file_grows_in_place_while_a_machine_runs_from_it_and_a_smaller_size_changes_nothing()
    {
        await using var store = await TestStore.CreateAsync(512L << 20);
        await store.CopyImageAsync("bookworm");
        var stamp = File.ReadAllText(Path.Combine(store.ImageDir("bookworm"), ImageBuilder.StampPath));
        Assert.Equal((512L << 20, 512L << 20), await store.SizesAsync());
        var freeBefore = await TestStore.FreeAsync(store.ChrootsDir);

        await using (var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = store.ImageDir("bookworm"), LogicalName = "grow" }))
        {
            var (log, warnings) = await store.EnsureAsync(1536L << 20);
            Assert.Contains(log, l => l.Contains("from 512 MiB to 1536 MiB"));
            Assert.Empty(warnings);
            Assert.Equal((1536L << 20, 1536L << 20), await store.SizesAsync());
            Assert.True(await TestStore.FreeAsync(store.ChrootsDir) >= freeBefore + (900L << 20), "the file system did not grow");

            // The machine goes on, and writes into the grown file system.
            Assert.True(await machine.IsSystemRunningAsync());
            await machine.ExecCheckedAsync(["dd", "if=/dev/zero", "of=/var/tmp/fill", "bs=1M", "count=64", "status=none"]);
            Assert.Equal(stamp, File.ReadAllText(Path.Combine(store.ImageDir("bookworm"), ImageBuilder.StampPath)));

            // A smaller size, through the task: a warning of its own code, and nothing changes.
            var engine = new FakeBuildEngine();
            var task = new EnsureBtrfsImage
            {
                BuildEngine = engine,
                Store = [ResolvedItems.FromStore(new StoreSettings(store.ChrootsDir, store.LoopFile, 1L << 30, EphemeralMode.Snapshot))],
            };
            try
            {
                Assert.True(task.Execute(), string.Join("\n", engine.ErrorLines));
            }
            finally
            {
                (engine.UnregisterTaskObject("Nspawn.Build.InUse:" + store.ChrootsDir, RegisteredTaskObjectLifetime.Build) as IDisposable)?.Dispose();
            }
            var warning = Assert.Single(engine.Warnings);
            Assert.Equal(ErrorCodes.LoopFileKept, warning.Code);
            Assert.Contains("(1024 MiB) is smaller than the btrfs loop file", warning.Message);
            Assert.Contains("(1536 MiB): the file stays at its size", warning.Message);
            Assert.Equal((1536L << 20, 1536L << 20), await store.SizesAsync());
            Assert.True(await machine.IsSystemRunningAsync());
        }
        Assert.Equal(stamp, File.ReadAllText(Path.Combine(store.ImageDir("bookworm"), ImageBuilder.StampPath)));

        // Unmounted, the file grows before the mount, and the file system after it.
        await store.UnmountAsync();
        Assert.Equal(1536L << 20, new FileInfo(store.LoopFile).Length);
        var (unmountedLog, _) = await store.EnsureAsync(2L << 30);
        Assert.Contains(unmountedLog, l => l.Contains("from 1536 MiB to 2048 MiB"));
        Assert.Equal((2L << 30, 2L << 30), await store.SizesAsync());
        Assert.Equal(stamp, File.ReadAllText(Path.Combine(store.ImageDir("bookworm"), ImageBuilder.StampPath)));

        // A smaller size while unmounted: the same warning, and the file keeps its size.
        await store.UnmountAsync();
        var (_, kept) = await store.EnsureAsync(1536L << 20);
        Assert.Contains("the file stays at its size", Assert.Single(kept));
        Assert.Equal((2L << 30, 2L << 30), await store.SizesAsync());
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Free_space_is_measured_after_btrfs_has_finished_removing_what_was_removed()
    {
        await using var store = await TestStore.CreateAsync(1L << 30);
        await store.CopyImageAsync("bookworm");
        await store.CopyImageAsync("old");
        var before = await TestStore.FreeAsync(store.ChrootsDir);
        // Removed as a user or another tool would: btrfs frees the space in the background, after this returns.
        await Cli.Wrap("btrfs").WithArguments(["-q", "subvolume", "delete", store.ImageDir("old")]).ExecuteBufferedAsync();
        Assert.True(await TestStore.FreeAsync(store.ChrootsDir) >= before + (200L << 20), "the removed image's space was not counted as free");
    }

    [Fact]
    public async Task A_symlink_in_place_of_the_loop_file_is_never_grown()
    {
        await using var store = await TestStore.CreateAsync(512L << 20);
        await store.UnmountAsync();
        // A user replaces the loop file with a symlink to another btrfs file (here, the real one moved away).
        var moved = Path.Combine(_dir, "elsewhere.img");
        File.Move(store.LoopFile, moved);
        File.CreateSymbolicLink(store.LoopFile, moved);
        var e = await Assert.ThrowsAsync<NspawnException>(() => store.EnsureAsync(1L << 30));
        // Refused by the check before anything (a loop file must be a regular file of root's).
        Assert.Equal(ErrorCodes.NotBtrfs, e.Code);
        Assert.Contains("a symlink is not followed", e.Message);
        Assert.Equal(512L << 20, new FileInfo(moved).Length);
    }

    [Fact]
    public async Task A_full_store_lists_its_images_and_both_ways_out_and_after_NspawnCleanImages_the_same_build_passes()
    {
        await using var store = await TestStore.CreateAsync(1536L << 20);
        await store.CopyImageAsync("bookworm");
        var fillers = new List<string>();
        while (await TestStore.FreeAsync(store.ChrootsDir) >= ImageBuilder.SpaceNeeded && fillers.Count < 8)
        {
            fillers.Add($"old-{fillers.Count + 1}");
            await store.CopyImageAsync(fillers[^1]);
        }
        Assert.True(await TestStore.FreeAsync(store.ChrootsDir) < ImageBuilder.SpaceNeeded, "the store did not fill");

        // A derived image: building it needs room for a new image, and no network.
        var project = new ConsumerProject(package, _dir, store.ChrootsDir,
            items: """<NspawnImageDefinition Include="web" BaseImage="bookworm" /><NspawnMachine Include="web" Image="web" />""",
            properties: "<NspawnBtrfsImageSize>1536M</NspawnBtrfsImageSize>");
        var full = await project.RunAsync(["-t:NspawnPrepareImages"]);
        output.WriteLine(full.Output);
        Assert.NotEqual(0, full.ExitCode);
        Assert.Contains("error NSPAWN0013: Building image 'web' needs 512 MiB but only", full.Output);
        Assert.Contains($"of 1536 MiB (the btrfs loop file '{store.LoopFile}'", full.Output);
        Assert.Matches(@"'bookworm': \d+ MiB \(\d+ MiB its own\), used by this project", full.Output);
        foreach (var filler in fillers)
            Assert.Matches($@"'{filler}': \d+ MiB \(\d+ MiB its own\), not used by this project", full.Output);
        Assert.Matches($@"NspawnCleanImages would remove {string.Join(", ", fillers.Select(f => $"'{f}'"))} and free at least \d+ MiB", full.Output);
        Assert.Contains("a larger NspawnBtrfsImageSize than the loop file's 1536 MiB (for example -p:NspawnBtrfsImageSize=3G)", full.Output);
        Assert.False(Directory.Exists(store.ImageDir("web")));

        // The listing has the same figures.
        var list = await project.RunAsync(["-t:NspawnListImages"]);
        output.WriteLine(list.Output);
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Matches($@"Store '{System.Text.RegularExpressions.Regex.Escape(store.ChrootsDir)}': \d+ MiB free of 1536 MiB", list.Output);
        Assert.Matches(@"Image 'old-1': \d+ MiB \(\d+ MiB its own\), built [\d.]+ days ago, not used by this project; format: 1;", list.Output);
        Assert.Contains($"NspawnCleanImages would remove {string.Join(", ", fillers.Select(f => $"'{f}'"))} and free at least", list.Output);

        // The first way out, then the same build: it passes at once, with nothing waited for by hand.
        var clean = await project.RunAsync(["-t:NspawnCleanImages"]);
        Assert.True(clean.ExitCode == 0, clean.ToString());
        foreach (var filler in fillers)
            Assert.Contains($"Removed image '{filler}'", clean.Output);
        var again = await project.RunAsync(["-t:NspawnPrepareImages"]);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("Image 'web': a snapshot of image 'bookworm'", again.Output);
        Assert.True(File.Exists(Path.Combine(store.ImageDir("web"), ImageBuilder.StampPath)));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_full_store_grows_when_NspawnBtrfsImageSize_is_raised()
    {
        await using var store = await TestStore.CreateAsync(512L << 20);
        await store.CopyImageAsync("bookworm");
        var project = new ConsumerProject(package, _dir, store.ChrootsDir,
            items: """<NspawnImageDefinition Include="web" BaseImage="bookworm" /><NspawnMachine Include="web" Image="web" />""");
        var full = await project.RunAsync(["-t:NspawnPrepareImages", "-p:NspawnBtrfsImageSize=512M"]);
        Assert.Contains("error NSPAWN0013: Building image 'web'", full.Output);
        Assert.Contains("NspawnCleanImages would remove no image", full.Output);

        // The second way out.
        var grown = await project.RunAsync(["-t:NspawnPrepareImages", "-p:NspawnBtrfsImageSize=1536M"]);
        Assert.True(grown.ExitCode == 0, grown.ToString());
        Assert.Contains("from 512 MiB to 1536 MiB", grown.Output);
        Assert.True(File.Exists(Path.Combine(store.ImageDir("web"), ImageBuilder.StampPath)));
        Assert.Equal((1536L << 20, 1536L << 20), await store.SizesAsync());
    }
}
