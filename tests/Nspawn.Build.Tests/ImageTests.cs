using System.Security;
using System.Xml.Linq;
using Nspawn.Build.Tasks;
using static Nspawn.Build.Tests.Resolving;

namespace Nspawn.Build.Tests;

/// <summary>Images a suite customises: exclude, architecture, components, files and a setup script, and a maximum age.</summary>
[Trait("Category", "Unit")]
public class ImageStampTests
{
    private static ImageSpec Spec() => TestImages.Spec("bookworm", "", "http://deb.debian.org/debian", "minbase", "dbus,systemd");

    [Fact]
    public void Each_new_input_changes_the_stamp_and_the_content_of_files_not_their_place()
    {
        var dir = Directory.CreateTempSubdirectory("nspawn-stamp-").FullName;
        try
        {
            string Write(string name, string text)
            {
                File.WriteAllText(Path.Combine(dir, name), text);
                return Path.Combine(dir, name);
            }
            var script = Write("setup.sh", "apt-get install -y jq\n");
            var file = Write("app.conf", "a=1\n");
            var stamps = new[]
            {
                Spec().Stamp,
                (Spec() with { Exclude = ["e2fsprogs"] }).Stamp,
                (Spec() with { Arch = "arm64" }).Stamp,
                (Spec() with { Components = ["main", "contrib"] }).Stamp,
                (Spec() with { SetupScript = script }).Stamp,
                (Spec() with { Files = [new ImageFile(file, "/etc/app.conf")] }).Stamp,
                (Spec() with { Files = [new ImageFile(file, "/etc/other.conf")] }).Stamp,
            };
            Assert.Equal(stamps.Length, stamps.Distinct().Count());

            var sameScript = Write("copy-of-setup.sh", "apt-get install -y jq\n");
            Assert.Equal((Spec() with { SetupScript = script }).Stamp, (Spec() with { SetupScript = sameScript }).Stamp);
            Write("setup.sh", "apt-get install -y jq curl\n");
            Assert.NotEqual((Spec() with { SetupScript = sameScript }).Stamp, (Spec() with { SetupScript = script }).Stamp);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Debootstrap_gets_exclude_arch_and_components()
    {
        var args = (Spec() with { Exclude = ["e2fsprogs"], Arch = "arm64", Components = ["main", "contrib"] }).DebootstrapArguments("/t");
        Assert.Equal(["--variant=minbase", "--include=dbus,systemd", "--exclude=e2fsprogs", "--arch=arm64", "--components=main,contrib", "bookworm", "/t", "http://deb.debian.org/debian"], args);
    }

    [Fact]
    public void An_Ubuntu_definition_as_the_README_writes_it_reaches_debootstrap_unchanged()
    {
        // The README's jammy definition, as a project has it.
        var xml = Assert.Single(Markdown.CodeBlocks(Markdown.Section(Readme.Lines, "Images and several machines"), "xml"));
        var jammy = XElement.Parse(xml).Elements("NspawnImageDefinition").Single(e => (string?)e.Attribute("Include") == "jammy");
        var definition = Item("jammy", jammy.Attributes().Where(a => a.Name != "Include").Select(a => (a.Name.LocalName, a.Value)).ToArray());
        var (task, engine) = Resolve(t =>
        {
            t.Machines = [Item("client", ("Image", "jammy"))];
            t.ImageDefinitions = [definition];
        });
        Assert.True(task.Execute(), string.Join('\n', engine.ErrorLines));
        var spec = ResolvedItems.ToImage(Assert.Single(task.Images));
        // The suite and the Ubuntu mirror as written, and no keyring or script of ours: debootstrap takes its own script
        // for the suite (Ubuntu's), which checks the archive with ubuntu-keyring's key.
        Assert.Equal(["--variant=minbase", "--include=dbus,systemd", "--components=main,universe", "jammy", "/t", "http://archive.ubuntu.com/ubuntu"],
            spec.DebootstrapArguments("/t"));
    }

    [Fact]
    public void An_image_older_than_its_maximum_age_is_out_of_date()
    {
        Assert.Equal(TimeSpan.FromDays(7), Validate.MaxAge("7d", "NspawnImageMaxAge"));
        Assert.Equal(TimeSpan.FromHours(12), Validate.MaxAge("12h", "NspawnImageMaxAge"));
        Assert.Null(Validate.MaxAge("", "NspawnImageMaxAge"));
        Assert.Equal(ErrorCodes.BadTimeout, Assert.Throws<NspawnException>(() => Validate.MaxAge("soon", "NspawnImageMaxAge")).Code);

        var dir = Directory.CreateTempSubdirectory("nspawn-age-").FullName;
        try
        {
            var stamp = Path.Combine(dir, "bookworm", ImageBuilder.StampPath);
            Directory.CreateDirectory(Path.GetDirectoryName(stamp)!);
            File.WriteAllText(stamp, Spec().Stamp);
            File.SetLastWriteTimeUtc(stamp, DateTime.UtcNow.AddDays(-8));
            Assert.True(new ImageBuilder(dir).IsUpToDate(Spec()));
            Assert.False(new ImageBuilder(dir) { MaxAge = TimeSpan.FromDays(7) }.IsUpToDate(Spec()));
            Assert.True(new ImageBuilder(dir) { MaxAge = TimeSpan.FromDays(9) }.IsUpToDate(Spec()));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("etc/app.conf")]
    [InlineData("/etc/../../host")]
    [InlineData("")]
    public void Image_paths_are_absolute_and_stay_inside(string path) =>
        Assert.Equal(ErrorCodes.BadPath, Assert.Throws<NspawnException>(() => Validate.ImagePath(path, "Destination")).Code);
}

/// <summary>A setup script and files, for real: the tests see what the script installed; a failing script keeps the old image.</summary>
[Collection(MachinesCollection.Name)]
public sealed class ImageSetupTests(PackageFixture package) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-setup-").FullName;
    private readonly string _image = "custom-" + Guid.NewGuid().ToString("N")[..8];
    private string ImageDir => Path.Combine(Repo.ChrootsDir, _image);

    public async Task InitializeAsync() => await package.FirstRunAsync();

    public async Task DisposeAsync()
    {
        await Subvolumes.RemoveTreeAsync(Repo.ChrootsDir, ImageDir, CancellationToken.None);
        Directory.Delete(_dir, recursive: true);
    }

    private Task<RunResult> PrepareAsync(string script) =>
        new ConsumerProject(package, _dir, Repo.ChrootsDir,
                items: $"""<NspawnImageFiles Include="{SecurityElement.Escape(Path.Combine(_dir, "hello.txt"))}" Destination="/opt/greeting/hello.txt" />""",
                properties: $"<NspawnSetupScript>{SecurityElement.Escape(script)}</NspawnSetupScript>")
            .RunAsync(["-t:NspawnPrepareImages", $"-p:NspawnImage={_image}", "-p:NspawnSuite=bookworm"]);

    [Fact]
    public async Task The_tests_see_what_the_setup_script_installed_and_a_failing_script_keeps_the_old_image()
    {
        File.WriteAllText(Path.Combine(_dir, "hello.txt"), "hello from the host\n");
        var setup = Path.Combine(_dir, "setup.sh");
        File.WriteAllText(setup, "apt-get install -y --no-install-recommends jq\nuseradd --create-home tester\necho \"setup ran as $(id -un)\"\n");
        var run = await PrepareAsync(setup);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains($"Image '{_image}': setup: setup ran as root", run.Output);

        await using (var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = ImageDir, LogicalName = "custom" }))
        {
            Assert.Equal("3", (await machine.ExecCheckedAsync(["jq", ".a + .b"], new ExecOptions { StandardInput = "{\"a\":1,\"b\":2}" })).StandardOutput.Trim());
            Assert.Equal("hello from the host\n", await machine.ReadAllTextAsync("/opt/greeting/hello.txt"));
            Assert.Equal("tester", (await machine.ExecCheckedAsync(["id", "-un"], new ExecOptions { User = "tester" })).StandardOutput.Trim());
        }

        // A changed script that fails: the build fails, and the image it would have replaced is still there, unchanged.
        var stamp = File.ReadAllText(Path.Combine(ImageDir, ImageBuilder.StampPath));
        File.WriteAllText(setup, "echo about to fail\nexit 3\n");
        var failing = await PrepareAsync(setup);
        Assert.NotEqual(0, failing.ExitCode);
        Assert.Contains("error NSPAWN0022", failing.Output);
        Assert.Contains("about to fail", failing.Output);
        Assert.Equal(stamp, File.ReadAllText(Path.Combine(ImageDir, ImageBuilder.StampPath)));
        Assert.True(File.Exists(Path.Combine(ImageDir, "usr/bin/jq")));
        Assert.Empty(Directory.GetDirectories(Repo.ChrootsDir, $".#{_image}.*"));
        Leaks.AssertNone();
    }
}

/// <summary>Images defined as items: derived images that follow their base, and the cache between runs.</summary>
[Collection(MachinesCollection.Name)]
public sealed class ImageDefinitionTests(PackageFixture package) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-defs-").FullName;
    private readonly string _suffix = Guid.NewGuid().ToString("N")[..6];
    private readonly List<string> _images = [];
    private readonly List<BtrfsStore> _stores = [];

    public async Task InitializeAsync() => await package.FirstRunAsync();

    public async Task DisposeAsync()
    {
        foreach (var image in _images)
            await Subvolumes.RemoveTreeAsync(Repo.ChrootsDir, image, CancellationToken.None);
        foreach (var store in _stores)
            await store.UnmountAsync(CancellationToken.None);
        Directory.Delete(_dir, recursive: true);
        Leaks.AssertNone();
    }

    private static ImageSpec Bookworm() => TestImages.Spec("bookworm", "bookworm", "http://deb.debian.org/debian", "minbase", "dbus,systemd");

    [Fact]
    public async Task A_derived_image_starts_from_its_base_and_follows_it()
    {
        var (mid, leaf) = ($"mid-{_suffix}", $"leaf-{_suffix}");
        _images.AddRange([Path.Combine(Repo.ChrootsDir, leaf), Path.Combine(Repo.ChrootsDir, mid)]);
        File.WriteAllText(Path.Combine(_dir, "mid.sh"), "echo v1 > /etc/mid-marker\n");
        File.WriteAllText(Path.Combine(_dir, "leaf.sh"), "cp /etc/mid-marker /etc/leaf-saw\n");
        var project = new ConsumerProject(package, _dir, Repo.ChrootsDir, items: $"""
            <NspawnImageDefinition Include="{mid}" BaseImage="bookworm" SetupScript="mid.sh" />
            <NspawnImageDefinition Include="{leaf}" BaseImage="{mid}" SetupScript="leaf.sh" />
            <NspawnMachine Include="leaf" Image="{leaf}" />
            """);

        var first = await project.RunAsync(["-t:ContainerTest"]);
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains($"Image '{leaf}': base image '{mid}': a snapshot of image 'bookworm'", first.Output);
        Assert.DoesNotContain("debootstrap", first.Output);
        Assert.Contains($"Started 'leaf' (nspawn-leaf-", first.Output);
        Assert.Equal("v1\n", File.ReadAllText(Path.Combine(Repo.ChrootsDir, leaf, "etc/leaf-saw")));

        // The base changes: both are rebuilt, the derived one from the new base.
        File.WriteAllText(Path.Combine(_dir, "mid.sh"), "echo v2 > /etc/mid-marker\n");
        var second = await project.RunAsync(["-t:NspawnPrepareImages"]);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Equal("v2\n", File.ReadAllText(Path.Combine(Repo.ChrootsDir, leaf, "etc/leaf-saw")));

        // Nothing changes: nothing is rebuilt.
        var third = await project.RunAsync(["-t:NspawnPrepareImages"]);
        Assert.Contains($"Image '{leaf}' is up to date (from {mid}", third.Output);
        Assert.DoesNotContain("a snapshot of", third.Output);
    }

    [Fact]
    public async Task Terminal_Loggers_status_line_names_the_phase_that_runs()
    {
        var image = $"tl-{_suffix}";
        _images.Add(Path.Combine(Repo.ChrootsDir, image));
        // Long enough for a refresh of the status line to fall inside the build.
        File.WriteAllText(Path.Combine(_dir, "tl.sh"), "sleep 2\n");
        var project = new ConsumerProject(package, _dir, Repo.ChrootsDir, items: $"""
            <NspawnImageDefinition Include="{image}" BaseImage="bookworm" SetupScript="tl.sh" />
            <NspawnMachine Include="tl" Image="{image}" />
            """);
        var build = await project.RunAsync(["-t:NspawnPrepareImages", "-tl:on"]);
        Assert.True(build.ExitCode == 0, build.ToString());
        Assert.Contains("NspawnBuildImages", build.Output);
        Assert.DoesNotContain("NspawnImportImages", build.Output);

        var again = await project.RunAsync(["-t:NspawnPrepareImages", "-tl:on"]);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.DoesNotContain("NspawnBuildImages", again.Output);
    }

    [Fact]
    public async Task A_silent_debootstrap_still_reports_progress_in_the_log()
    {
        // A debootstrap that reads the index, then says nothing for longer than the heartbeat's silence, then fails.
        var tools = Directory.CreateDirectory(Path.Combine(_dir, "tools")).FullName;
        var fake = Path.Combine(tools, "debootstrap");
        File.WriteAllText(fake, "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'debootstrap 1.0.128'; exit 0; }\necho 'I: Retrieving InRelease'\nsleep 12\nexit 1\n");
        File.SetUnixFileMode(fake, (UnixFileMode)0b111_101_101);
        var image = $"silent-{_suffix}";
        var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir, properties: $"<NspawnImage>{image}</NspawnImage><NspawnSuite>bookworm</NspawnSuite>")
            .RunAsync(["-t:NspawnPrepareImages"], new Dictionary<string, string?> { ["PATH"] = tools + ":" + Environment.GetEnvironmentVariable("PATH") });
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains($"Image '{image}': reading the archive index", run.Output);
        Assert.Contains($"Image '{image}': still reading the archive index", run.Output);
        Assert.Contains("error NSPAWN0021", run.Output);
        Assert.False(Directory.Exists(Path.Combine(Repo.ChrootsDir, image)));
        Assert.Empty(Directory.GetFileSystemEntries(Repo.ChrootsDir, $".#{image}.new-*"));
    }

    [Fact]
    public async Task An_exported_image_imports_on_another_file_system_and_boots_without_debootstrap()
    {
        var cache = Directory.CreateDirectory(Path.Combine(_dir, "cache")).FullName;
        // Exported by a build that had it up to date already.
        var export = await new ConsumerProject(package, _dir, Repo.ChrootsDir).RunAsync(["-t:NspawnPrepareImages", $"-p:NspawnImageCacheDir={cache}"]);
        Assert.True(export.ExitCode == 0, export.ToString());
        var file = new ImageCache(cache).FileOf(Bookworm());
        Assert.True(File.Exists(file), export.Output);

        // An empty chroots folder on a loop file system of its own, as on a new CI runner.
        var chroots = Path.Combine(_dir, "runner", "test_chroots");
        var store = new BtrfsStore(chroots, Path.Combine(chroots, "btrfs.img"), 2L << 30);
        _stores.Add(store);
        await store.EnsureAsync(_ => { }, _ => { }, CancellationToken.None);
        var progress = new List<string>();
        var warnings = new List<NspawnWarning>();
        var builder = new ImageBuilder(chroots) { Cache = new ImageCache(cache), Warn = warnings.Add };
        Assert.Equal(ImageResult.Built, await builder.EnsureAsync(Bookworm(), progress.Add, CancellationToken.None));
        Assert.Contains(progress, p => p.StartsWith("imported from"));
        Assert.DoesNotContain(progress, p => p.Contains("debootstrap"));
        await using (var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = builder.ImageDir(Bookworm()), LogicalName = "imported" }))
            Assert.True(await machine.IsSystemRunningAsync());

        // A truncated stream: the import fails cleanly and the build falls back to debootstrap (here one that fails fast).
        var other = Bookworm() with { Suite = "no-such-suite" };
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(new ImageCache(cache).FileOf(other), bytes[..(bytes.Length / 2)]);
        progress.Clear();
        var e = await Assert.ThrowsAsync<NspawnException>(() => builder.EnsureAsync(other, progress.Add, CancellationToken.None));
        Assert.Equal(ErrorCodes.DebootstrapFailed, e.Code);
        Assert.Contains(warnings, w => w.Code == ErrorCodes.CacheImportRejected && w.Message.Contains("was not used"));
        Assert.Empty(Directory.GetDirectories(chroots, ".#*"));
    }
}

/// <summary>NspawnListImages and NspawnCleanImages on real images.</summary>
[Collection(MachinesCollection.Name)]
public sealed class HousekeepingTests(PackageFixture package) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-housekeeping-").FullName;
    private readonly List<TempImage> _images = [];
    private string[] Extra => _images.Select(i => i.Name).ToArray();

    public async Task InitializeAsync()
    {
        await package.FirstRunAsync();
        foreach (var prefix in new[] { "unused", "kept", "running" })
            _images.Add(await TempImage.SnapshotAsync(prefix));
    }

    public async Task DisposeAsync()
    {
        foreach (var image in _images)
            await image.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Clean_removes_only_images_nobody_uses_or_keeps()
    {
        var project = new ConsumerProject(package, _dir, Repo.ChrootsDir);
        await using var running = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = Path.Combine(Repo.ChrootsDir, Extra[2]), LogicalName = "running" });

        var list = await project.RunAsync(["-t:NspawnListImages"]);
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Matches(@"Image 'bookworm': \d+ MiB \(\d+ MiB its own\), built [\d.]+ days ago, used by this project; format: 1;suite: bookworm", list.Output);
        Assert.Contains($"Image '{Extra[0]}':", list.Output);
        Assert.Contains("not used by this project", list.Output);
        Assert.Contains($"Image '{Extra[2]}': ", list.Output);
        Assert.Matches($@"Image '{Extra[2]}': \d+ MiB \(0 MiB its own\), built [\d.]+ days ago, in use", list.Output);
        Assert.Matches($"NspawnCleanImages would remove [^\n]*'{Extra[0]}'[^\n]* and free at least", list.Output);

        var clean = await project.RunAsync(["-t:NspawnCleanImages", $"-p:NspawnKeepImages={Extra[1]}"]);
        Assert.True(clean.ExitCode == 0, clean.ToString());
        Assert.Contains($"Removed image '{Extra[0]}'", clean.Output);
        Assert.False(Directory.Exists(Path.Combine(Repo.ChrootsDir, Extra[0])));
        Assert.True(Directory.Exists(Path.Combine(Repo.ChrootsDir, Extra[1])), "a kept image was removed");
        Assert.True(Directory.Exists(Path.Combine(Repo.ChrootsDir, Extra[2])), "an image in use was removed");
        Assert.True(File.Exists(Path.Combine(Repo.ImageDir, ImageBuilder.StampPath)), "the project's own image was removed");
        Assert.True(await running.IsSystemRunningAsync());
    }
}
