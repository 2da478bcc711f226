using System.IO.Compression;
using System.Numerics;
using System.Text;
using System.Text.Json;

namespace Nspawn.Build.Tests;

/// <summary>The pure checks behind a safe store: names we make, records we can use, entries seen without following links.</summary>
[Trait("Category", "Unit")]
public sealed class StoreEntryTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-entries-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Image(string name, string? stamp = "format: 1\n")
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;
        if (stamp is not null)
        {
            Directory.CreateDirectory(Path.Combine(dir, "etc"));
            File.WriteAllText(Path.Combine(dir, ImageBuilder.StampPath), stamp);
        }
        return dir;
    }

    [Fact]
    public void Only_the_names_we_make_are_ours()
    {
        Assert.Equal("bookworm", TempNames.ImageOfTemp(".#bookworm.old-0123456789abcdef"));
        Assert.Equal("web-2", TempNames.ImageOfTemp(Path.GetFileName(TempNames.ImageTemp("/c", "web-2", ".recv-"))));
        Assert.Null(TempNames.ImageOfTemp(".#bookworm.old-x"));
        Assert.Null(TempNames.ImageOfTemp("bookworm"));
        Assert.Null(TempNames.ImageOfTemp(".#../x.new-0123456789abcdef"));
        Assert.True(TempNames.IsOurs(".#machine.bookworm1a2b3c4d"));
        Assert.False(TempNames.IsOurs("machine.bookworm"));
        Assert.Equal("/c/.#bookworm.lck", TempNames.ImageLock("/c", "bookworm"));
    }

    [Fact]
    public void A_link_or_a_folder_without_our_stamp_is_never_removable_and_is_reported()
    {
        var ours = Image("ours");
        var foreign = Image("foreign", stamp: null);
        var temp = Image(".#ours.new-0123456789abcdef", stamp: null);
        var link = Path.Combine(_dir, "link");
        File.CreateSymbolicLink(link, ours);
        File.CreateSymbolicLink(Path.Combine(_dir, ".#machine.planted"), ours);
        File.WriteAllText(Path.Combine(_dir, "file"), "");

        Assert.Null(StoreEntry.WhyNotRemovable(_dir, ours));
        Assert.Null(StoreEntry.WhyNotRemovable(_dir + "/", temp));
        Assert.Contains("no etc/nspawn-build.stamp", StoreEntry.WhyNotRemovable(_dir, foreign));
        Assert.Contains("symbolic link", StoreEntry.WhyNotRemovable(_dir, link));
        Assert.Contains("symbolic link", StoreEntry.WhyNotRemovable(_dir, link + "/"));
        Assert.Contains("not directly in the chroots folder", StoreEntry.WhyNotRemovable(_dir, Path.Combine(ours, "etc")));

        var skipped = new List<NspawnWarning>();
        var folders = StoreEntry.Folders(_dir, "*", skipped.Add);
        Assert.Equal([temp, foreign, ours], folders.Order(StringComparer.Ordinal));
        Assert.Equal(2, skipped.Count);
        Assert.All(skipped, w => Assert.Equal(ErrorCodes.LeftAlone, w.Code));
        Assert.Contains(skipped, w => w.Message.Contains(".#machine.planted") && w.Message.Contains(ours));
    }

    [Fact]
    public void A_stamp_is_read_only_through_real_folders()
    {
        var real = Image("real", "the stamp\n");
        Assert.Equal("the stamp\n", StoreEntry.ReadStamp(real));

        var etcLink = Image("etc-link", stamp: null);
        File.CreateSymbolicLink(Path.Combine(etcLink, "etc"), Path.Combine(real, "etc"));
        Assert.Null(StoreEntry.ReadStamp(etcLink));

        var stampLink = Image("stamp-link", stamp: null);
        Directory.CreateDirectory(Path.Combine(stampLink, "etc"));
        File.CreateSymbolicLink(Path.Combine(stampLink, ImageBuilder.StampPath), Path.Combine(real, ImageBuilder.StampPath));
        Assert.Null(StoreEntry.ReadStamp(stampLink));
    }

    [Fact]
    public void The_mount_of_a_file_is_seen_and_differs_between_file_systems()
    {
        var sub = Directory.CreateDirectory(Path.Combine(_dir, "sub")).FullName;
        Assert.NotEqual(0UL, FileStatus.Of(_dir)!.MountId);
        Assert.Equal(FileStatus.Of(_dir)!.MountId, FileStatus.Of(sub)!.MountId);
        Assert.NotEqual(FileStatus.Of("/proc/self")!.MountId, FileStatus.Of(_dir)!.MountId);
    }

    private static string? Problem(string json, string file = "nspawn-web-1a2b3c4d") =>
        JsonSerializer.Deserialize<MachineRecord>(json, StateJson.SerializerOptions)!.Problem(file);

    [Fact]
    public void A_record_of_another_format_or_with_fields_missing_is_not_used()
    {
        var machine = Machine.Starting(new LaunchOptions("web", "/c/bookworm") { MachineName = "nspawn-web-1a2b3c4d" }, null,
            ["/sys/fs/cgroup/nspawn-web-1a2b3c4d"]) with { Snapshot = "/c/.#machine.bookworm99" };
        var good = new MachineRecord(machine, 1, 2) { Format = MachineRecord.CurrentFormat };
        var json = JsonSerializer.Serialize(good, StateJson.SerializerOptions);
        Assert.Null(Problem(json));

        Assert.Contains("another version", Problem("{}"));
        Assert.Contains("another version", Problem(json.Replace("\"format\": 1", "\"format\": 2")));
        Assert.Contains("lacks the field machine", Problem("""{"format": 1, "ownerPid": 5}"""));
        Assert.Contains("lacks the fields machine.logicalName, machine.image, machine.imageDir, machine.cgroups, ownerPid",
            Problem("""{"format": 1, "machine": {"name": "nspawn-web-1a2b3c4d"}}"""));
        Assert.Contains("not its file's name", Problem(json, "nspawn-other-1a2b3c4d"));
        Assert.Contains("not those of a machine", Problem(json.Replace(".#machine.bookworm99", "bookworm")));
        Assert.Contains("not those of a machine", Problem(json.Replace("/sys/fs/cgroup/nspawn-web-1a2b3c4d", "/sys/fs/cgroup/system.slice")));
    }
}

/// <summary>
/// Safe as root in the store and the cache (issue 11, items 2, 3, 7 and 8): each test does the bad thing for real
/// (plants a link, crafts a stream, writes a foreign record, runs an overlay machine through a rebuild and a
/// clean, puts a user's own file in the cache) and checks that nothing outside the chroots folder changed,
/// nothing we did not make was deleted, and the build said so with a coded warning or error.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class SecurityStoreTests(PackageFixture package) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-security-").FullName;
    private readonly string _suffix = Guid.NewGuid().ToString("N")[..8];
    private readonly List<string> _planted = [];
    private readonly List<string> _images = [];
    private BtrfsStore? _other;

    public async Task InitializeAsync() => await package.RequireImageAsync();

    public async Task DisposeAsync()
    {
        foreach (var path in _planted)
            File.Delete(path); // a link or a record we put there: never what it points to
        foreach (var image in _images)
            await Subvolumes.RemoveTreeAsync(Repo.ChrootsDir, image, CancellationToken.None);
        if (_other is not null)
        {
            await Subvolumes.RemoveTreeAsync(_other.ChrootsDir, Path.Combine(_other.ChrootsDir, "victim"), CancellationToken.None);
            await _other.UnmountAsync(CancellationToken.None);
        }
        Directory.Delete(_dir, recursive: true);
        Leaks.AssertNone();
    }

    private ConsumerProject Consumer(string items = "", string name = "consumer") => new(package, _dir, Repo.ChrootsDir, items, name: name);

    // Without the summary MSBuild repeats every warning at its end: once means once.
    private static string[] Quiet(params string[] args) => [.. args, "-clp:NoSummary"];

    private static int Count(string text, string part) => text.Split(part).Length - 1;

    /// <summary>Another project's image, in a chroots folder of its own (another btrfs file system): what a link of ours must never reach.</summary>
    private async Task<string> OtherProjectsImageAsync()
    {
        var chroots = Path.Combine(_dir, "other", "test_chroots");
        _other = new BtrfsStore(chroots, Path.Combine(chroots, "btrfs.img"), 256L << 20);
        await _other.EnsureAsync(_ => { }, _ => { }, CancellationToken.None);
        var victim = Path.Combine(chroots, "victim");
        await Subvolumes.CreateAsync(victim, CancellationToken.None);
        Directory.CreateDirectory(Path.Combine(victim, "etc"));
        File.WriteAllText(Path.Combine(victim, ImageBuilder.StampPath), "format: 1\nsuite: another project's\n");
        File.WriteAllText(Path.Combine(victim, "marker"), "another project's image\n");
        return victim;
    }

    private string Plant(string name, string target)
    {
        var link = Path.Combine(Repo.ChrootsDir, name);
        File.CreateSymbolicLink(link, target);
        _planted.Add(link);
        return link;
    }

    private static void AssertIntact(string victim)
    {
        Assert.True(File.Exists(Path.Combine(victim, "marker")), $"'{victim}', which a link pointed to, was deleted");
        Assert.Equal("another project's image\n", File.ReadAllText(Path.Combine(victim, "marker")));
    }

    [Fact]
    public async Task A_link_in_the_chroots_folder_makes_the_reaper_delete_nothing_it_points_to()
    {
        var victim = await OtherProjectsImageAsync();
        var snapshotLink = Plant($".#machine.planted{_suffix}", victim);
        var oldLink = Plant($".#planted-{_suffix}.old-0123456789abcdef", victim);

        var reap = await Consumer().RunAsync(Quiet("-t:NspawnReap"));
        Assert.True(reap.ExitCode == 0, reap.ToString());
        AssertIntact(victim);
        Assert.True(FileStatus.Of(snapshotLink)!.IsSymlink && FileStatus.Of(oldLink)!.IsSymlink, "a link was removed: " + reap);
        Assert.Equal(1, Count(reap.Output, $"warning NSPAWN0060: '{snapshotLink}' in the chroots folder was left alone: it is a symbolic link (to '{victim}')"));
        Assert.Equal(1, Count(reap.Output, $"warning NSPAWN0060: '{oldLink}'"));
    }

    [Fact]
    public async Task NspawnCleanImages_and_a_rebuild_never_delete_through_a_link_to_another_projects_image()
    {
        var victim = await OtherProjectsImageAsync();
        var name = $"linked-{_suffix}";
        var link = Plant(name, victim);

        var clean = await Consumer().RunAsync(Quiet("-t:NspawnCleanImages"));
        Assert.True(clean.ExitCode == 0, clean.ToString());
        AssertIntact(victim);
        Assert.DoesNotContain($"Removed image '{name}'", clean.Output);
        Assert.Contains($"warning NSPAWN0060: '{link}' in the chroots folder was left alone: it is a symbolic link", clean.Output);

        // An image of that name to rebuild (a cheap one, derived from the project's image): refused before anything is made.
        File.WriteAllText(Path.Combine(_dir, "setup.sh"), "true\n");
        var rebuild = await Consumer($"""
            <NspawnImageDefinition Include="{name}" BaseImage="bookworm" SetupScript="setup.sh" />
            <NspawnMachine Include="linked" Image="{name}" />
            """).RunAsync(["-t:NspawnPrepareImages"]);
        Assert.NotEqual(0, rebuild.ExitCode);
        Assert.Contains($"error NSPAWN0014: '{link}' exists but was not made by Nspawn.Build: it is a symbolic link", rebuild.Output);
        AssertIntact(victim);
        Assert.True(FileStatus.Of(link)!.IsSymlink);
        Assert.Empty(Directory.GetFileSystemEntries(Repo.ChrootsDir, $".#{name}.*"));
    }

    /// <summary>Host files a crafted stream goes for, and the folder it would pass off as the image's etc/.</summary>
    private (string Victim, string Victim2, string HostEtc) HostFiles()
    {
        var victim = Path.Combine(_dir, "victim");
        var victim2 = Path.Combine(_dir, "victim2");
        foreach (var file in new[] { victim, victim2 })
        {
            File.WriteAllText(file, "original\n");
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
        var hostEtc = Directory.CreateDirectory(Path.Combine(_dir, "host-etc")).FullName;
        return (victim, victim2, hostEtc);
    }

    private static void AssertUnchanged(string file)
    {
        Assert.Equal("original\n", File.ReadAllText(file));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(file));
    }

    private static byte[] Crafted(string kind, ImageSpec spec, (string Victim, string Victim2, string HostEtc) host)
    {
        var stamp = Encoding.UTF8.GetBytes(spec.Stamp);
        var stream = new SendStream().Subvol("image");
        switch (kind)
        {
            case "writes-through-links":
                // A link in the image to a host file, then a write, a truncate and a chmod of the link; and a path out of the image.
                stream.Symlink("evil", 257, host.Victim).Write("evil", 0, "PWNED"u8.ToArray()).Truncate("evil", 3).Chmod("evil", Convert.ToUInt64("6777", 8))
                    .Write(string.Concat(Enumerable.Repeat("../", 24)) + host.Victim2.TrimStart('/'), 0, "PWNED"u8.ToArray());
                break;
            case "two-subvolumes":
                stream.Mkdir("etc", 257).Mkfile(ImageBuilder.StampPath, 258).Write(ImageBuilder.StampPath, 0, stamp)
                    .Subvol("second").Mkdir("etc", 257).Mkfile(ImageBuilder.StampPath, 258).Write(ImageBuilder.StampPath, 0, stamp);
                break;
            case "etc-is-a-link":
                // The right stamp, but in a host folder that the image's etc/ links to.
                File.WriteAllBytes(Path.Combine(host.HostEtc, "nspawn-build.stamp"), stamp);
                stream.Symlink("etc", 257, host.HostEtc);
                break;
        }
        return stream.End().Gzipped();
    }

    [Theory]
    [InlineData("writes-through-links")]
    [InlineData("two-subvolumes")]
    [InlineData("etc-is-a-link")]
    public async Task A_crafted_stream_in_the_cache_changes_nothing_on_the_host_and_the_image_is_built_instead(string kind)
    {
        var name = $"cached-{_suffix}";
        // A suite that does not exist: the build that replaces the import fails fast, in debootstrap.
        var spec = TestImages.Spec(name, "no-such-suite", Settings.Mirror.DefaultText, Settings.Variant.DefaultText, Settings.Include.DefaultText);
        var cache = Directory.CreateDirectory(Path.Combine(_dir, "cache")).FullName;
        var host = HostFiles();
        var bytes = Crafted(kind, spec, host);
        var stamp = Encoding.UTF8.GetBytes(spec.Stamp);
        // The control: the stream is truly harmful. A plain 'btrfs receive', not confined, does what it goes for.
        var scratch = TempNames.ImageTemp(Repo.ChrootsDir, name, ".recv-");
        Directory.CreateDirectory(scratch);
        await Cli.Wrap("btrfs").WithArguments(["receive", "-e", scratch]).WithStandardInputPipe(PipeSource.FromBytes(SendStream.Gunzip(bytes)))
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
        switch (kind)
        {
            case "writes-through-links":
                // It writes both host files.
                Assert.Equal("PWN", File.ReadAllText(host.Victim));
                Assert.Equal("PWNED", File.ReadAllText(host.Victim2)[..5]);
                break;
            case "two-subvolumes":
                // Two images, each with the right stamp: an import that took one would leave the other in the store.
                Assert.Equal(stamp, File.ReadAllBytes(Path.Combine(scratch, "image", ImageBuilder.StampPath)));
                Assert.Equal(stamp, File.ReadAllBytes(Path.Combine(scratch, "second", ImageBuilder.StampPath)));
                break;
            case "etc-is-a-link":
                // The image's etc/ is the host folder: its stamp reads right, and what the build would write in the image's etc/ lands there.
                Assert.Equal(stamp, File.ReadAllBytes(Path.Combine(scratch, "image", ImageBuilder.StampPath)));
                File.WriteAllText(Path.Combine(scratch, "image/etc/written-in-the-image"), "");
                Assert.True(File.Exists(Path.Combine(host.HostEtc, "written-in-the-image")));
                File.Delete(Path.Combine(host.HostEtc, "written-in-the-image"));
                break;
        }
        await Subvolumes.RemoveTreeAsync(Repo.ChrootsDir, scratch, CancellationToken.None);
        host = HostFiles();
        File.WriteAllBytes(new ImageCache(cache).FileOf(spec), bytes);

        var run = await Consumer().RunAsync(Quiet("-t:NspawnPrepareImages", $"-p:NspawnImage={name}", "-p:NspawnSuite=no-such-suite", $"-p:NspawnImageCacheDir={cache}"));
        Assert.Equal(1, Count(run.Output, $"warning NSPAWN0062: The cached image '{new ImageCache(cache).FileOf(spec)}' was not used: "));
        Assert.Contains("error NSPAWN0021: debootstrap of image", run.Output);
        Assert.DoesNotContain("MSB4018", run.Output);
        Assert.DoesNotContain("imported from", run.Output);
        AssertUnchanged(host.Victim);
        AssertUnchanged(host.Victim2);
        // The host folder holds what the stream put there (the stamp), and nothing more was written in it.
        Assert.Equal(kind == "etc-is-a-link" ? ["nspawn-build.stamp"] : [], Directory.GetFileSystemEntries(host.HostEtc).Select(Path.GetFileName));
        // No second image was left in the store.
        Assert.Null(FileStatus.Of(Path.Combine(Repo.ChrootsDir, "second")));
        Assert.Null(FileStatus.Of(Path.Combine(Repo.ChrootsDir, name)));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(Repo.ChrootsDir, $".#{name}.*"), e => !e.EndsWith(".lck"));
    }

    [Fact]
    public async Task A_failed_export_to_the_cache_is_a_warning_and_the_build_goes_on()
    {
        var notAFolder = Path.Combine(_dir, "a-file");
        File.WriteAllText(notAFolder, "");
        var run = await Consumer().RunAsync(Quiet("-t:NspawnPrepareImages", $"-p:NspawnImageCacheDir={notAFolder}/cache"));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(1, Count(run.Output, $"warning NSPAWN0063: Image 'bookworm' could not be exported to NspawnImageCacheDir '{notAFolder}/cache'"));
        Assert.Empty(Directory.GetFileSystemEntries(Repo.ChrootsDir, ".#bookworm.send-*"));
    }

    [Fact]
    public async Task A_record_of_another_version_or_with_fields_missing_is_reported_once_and_left_alone()
    {
        Directory.CreateDirectory(MachineRegistry.Dir);
        var records = new Dictionary<string, string>
        {
            [$"nspawn-empty-{_suffix}"] = "{}",
            [$"nspawn-newer-{_suffix}"] = $$"""{"format": 2, "machine": {"name": "nspawn-newer-{{_suffix}}"}, "ownerPid": 1, "ownerStartTime": 1}""",
            [$"nspawn-garbage-{_suffix}"] = "not a record",
        };
        foreach (var (name, text) in records)
        {
            var path = Path.Combine(MachineRegistry.Dir, name + ".json");
            File.WriteAllText(path, text);
            _planted.Add(path);
        }

        // A whole ContainerTest: its reaper reads every record, and the build still passes.
        var run = await Consumer().RunAsync(Quiet("-t:ContainerTest"));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.DoesNotContain("MSB4018", run.Output);
        foreach (var (name, text) in records)
        {
            var path = Path.Combine(MachineRegistry.Dir, name + ".json");
            Assert.Equal(1, Count(run.Output, $"warning NSPAWN0061: The machine record '{path}' was left alone: "));
            Assert.Equal(text, File.ReadAllText(path));
        }
        Assert.Contains("another version of Nspawn.Build (record format 2", run.Output);
        Assert.Contains("Stopped 'default'", run.Output);
    }

    [Fact]
    public async Task An_overlay_machine_keeps_its_old_image_through_a_rebuild_until_it_stops()
    {
        var name = $"overlay-{_suffix}";
        var image = Path.Combine(Repo.ChrootsDir, name);
        _images.Add(image);
        var setup = Path.Combine(_dir, "marker.sh");
        var project = Consumer($"""
            <NspawnImageDefinition Include="{name}" BaseImage="bookworm" SetupScript="marker.sh" />
            <NspawnMachine Include="overlay" Image="{name}" />
            """);
        File.WriteAllText(setup, "echo v1 > /etc/marker\n");
        var first = await project.RunAsync(["-t:NspawnPrepareImages"]);
        Assert.True(first.ExitCode == 0, first.ToString());

        await using (var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = image, LogicalName = "overlay", Mode = EphemeralMode.Overlay }))
        {
            File.WriteAllText(setup, "echo v2 > /etc/marker\n");
            var rebuild = await project.RunAsync(["-t:NspawnPrepareImages"]);
            Assert.True(rebuild.ExitCode == 0, rebuild.ToString());
            Assert.Contains("the old image stays aside", rebuild.Output);
            Assert.Equal("v2\n", File.ReadAllText(Path.Combine(image, "etc/marker")));
            var old = Assert.Single(Directory.GetDirectories(Repo.ChrootsDir, $".#{name}.old-*"));
            Assert.Equal("v1\n", (await machine.ExecCheckedAsync("cat", "/etc/marker")).StandardOutput);
            Assert.Contains("sh", (await machine.ExecCheckedAsync("ls", "/usr/bin")).StandardOutput);

            // Another build's reaper leaves it while the machine runs.
            var reap = await Consumer(name: "other").RunAsync(["-t:NspawnReap"]);
            Assert.True(reap.ExitCode == 0, reap.ToString());
            Assert.True(Directory.Exists(old), reap.Output);
        }
        var after = await Consumer(name: "other").RunAsync(["-t:NspawnReap"]);
        Assert.True(after.ExitCode == 0, after.ToString());
        Assert.Contains($"Removed a leftover of an earlier run: unfinished image {Repo.ChrootsDir}/.#{name}.old-", after.Output);
        Assert.Empty(Directory.GetDirectories(Repo.ChrootsDir, $".#{name}.*"));
    }

    [Fact]
    public async Task NspawnCleanImages_leaves_an_image_that_an_overlay_machine_runs_from_whoever_started_it()
    {
        await using var image = await TempImage.SnapshotAsync("overlay-clean");
        // Not one of ours (another tool, another version of the package): only nspawn's own lock says it is in use.
        using var stop = new CancellationTokenSource();
        var nspawn = Cli.Wrap("systemd-nspawn").WithArguments(["--quiet", "--register=no", "--keep-unit", "--read-only", "--volatile=overlay",
                $"--directory={image.Dir}", $"--machine=nspawn-foreign-{_suffix}", "--", "/bin/sleep", "600"])
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(stop.Token);
        try
        {
            var lockFile = TempNames.ImageLock(Repo.ChrootsDir, image.Name);
            Assert.True(await Shell.WaitUntilAsync(() => File.Exists(lockFile) && LockProbe.IsHeld(lockFile), TimeSpan.FromSeconds(30)), "nspawn took no lock");

            var clean = await Consumer().RunAsync(Quiet("-t:NspawnCleanImages"));
            Assert.True(clean.ExitCode == 0, clean.ToString());
            Assert.DoesNotContain($"Removed image '{image.Name}'", clean.Output);
            Assert.True(File.Exists(Path.Combine(image.Dir, ImageBuilder.StampPath)), "an image an overlay machine runs from was removed");
        }
        finally
        {
            ProcessInfo.Signal(nspawn.ProcessId, ProcessInfo.StartTime(nspawn.ProcessId) ?? 0, ProcessInfo.SigTerm);
            if (await Task.WhenAny(nspawn.Task, Task.Delay(TimeSpan.FromSeconds(10))) != nspawn.Task)
                stop.Cancel();
            await nspawn.Task.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        // Once it is gone, the same clean removes the image: the lock was what kept it.
        var again = await Consumer().RunAsync(Quiet("-t:NspawnCleanImages"));
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains($"Removed image '{image.Name}'", again.Output);
    }

    [Fact]
    public async Task NspawnCleanImages_removes_only_this_projects_stale_exports()
    {
        var cache = Directory.CreateDirectory(Path.Combine(_dir, "exports")).FullName;
        var bookworm = TestImages.Spec("bookworm", "bookworm", Settings.Mirror.DefaultText, Settings.Variant.DefaultText, Settings.Include.DefaultText);
        string Put(string name, byte[] content)
        {
            var path = Path.Combine(cache, name);
            File.WriteAllBytes(path, SendStream.Gzip(content));
            return path;
        }
        var stream = new SendStream().End().Raw();
        var stale = Put("bookworm-0123456789abcdef.btrfs.gz", stream);
        var current = Put(Path.GetFileName(new ImageCache(cache).FileOf(bookworm)), stream);
        var users = Put("x.btrfs.gz", "a user's own file\n"u8.ToArray());
        var lookalike = Put("bookworm-fedcba9876543210.btrfs.gz", "not a btrfs stream\n"u8.ToArray());
        var otherProjects = Put("trixie-0123456789abcdef.btrfs.gz", stream);

        var clean = await Consumer().RunAsync(Quiet("-t:NspawnCleanImages", $"-p:NspawnImageCacheDir={cache}"));
        Assert.True(clean.ExitCode == 0, clean.ToString());
        Assert.Contains("Removed export 'bookworm-0123456789abcdef.btrfs.gz'", clean.Output);
        Assert.False(File.Exists(stale));
        foreach (var kept in new[] { current, users, lookalike, otherProjects })
            Assert.True(File.Exists(kept), $"'{kept}' was removed:\n{clean.Output}");
    }
}

/// <summary>A btrfs send stream (version 1) written by hand: what an attacker puts in a CI cache.</summary>
internal sealed class SendStream
{
    private readonly MemoryStream _bytes = new();

    public SendStream()
    {
        _bytes.Write("btrfs-stream\0"u8);
        _bytes.Write(BitConverter.GetBytes(1u));
    }

    public SendStream Subvol(string path) => Command(1, Text(15, path), Attribute(1, Guid.NewGuid().ToByteArray()), Number(2, 1));
    public SendStream Mkfile(string path, ulong inode) => Command(3, Text(15, path), Number(3, inode));
    public SendStream Mkdir(string path, ulong inode) => Command(4, Text(15, path), Number(3, inode));
    public SendStream Symlink(string path, ulong inode, string target) => Command(8, Text(15, path), Number(3, inode), Text(17, target));
    public SendStream Write(string path, ulong offset, byte[] data) => Command(15, Text(15, path), Number(18, offset), Attribute(19, data));
    public SendStream Truncate(string path, ulong size) => Command(17, Text(15, path), Number(4, size));
    public SendStream Chmod(string path, ulong mode) => Command(18, Text(15, path), Number(5, mode));
    public SendStream End() => Command(21);

    public byte[] Raw() => _bytes.ToArray();

    public byte[] Gzipped() => Gzip(Raw());

    public static byte[] Gzip(byte[] data)
    {
        var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
            gzip.Write(data);
        return output.ToArray();
    }

    public static byte[] Gunzip(byte[] data)
    {
        using var gzip = new GZipStream(new MemoryStream(data), CompressionMode.Decompress);
        var output = new MemoryStream();
        gzip.CopyTo(output);
        return output.ToArray();
    }

    private static byte[] Attribute(ushort type, byte[] value) => [.. BitConverter.GetBytes(type), .. BitConverter.GetBytes((ushort)value.Length), .. value];
    private static byte[] Text(ushort type, string value) => Attribute(type, Encoding.UTF8.GetBytes(value));
    private static byte[] Number(ushort type, ulong value) => Attribute(type, BitConverter.GetBytes(value));

    /// <summary>Header (payload length, command, CRC-32C of header and payload with the CRC as zero), then the attributes.</summary>
    private SendStream Command(ushort command, params byte[][] attributes)
    {
        byte[] payload = [.. attributes.SelectMany(a => a)];
        byte[] all = [.. BitConverter.GetBytes((uint)payload.Length), .. BitConverter.GetBytes(command), 0, 0, 0, 0, .. payload];
        var crc = all.Aggregate(0u, BitOperations.Crc32C);
        BitConverter.GetBytes(crc).CopyTo(all, 6);
        _bytes.Write(all);
        return this;
    }
}
