using System.Security;
using Nspawn.Testing;
using Xunit;

namespace Nspawn.Build.Tests;

/// <summary>Images a suite customises: exclude, architecture, components, files and a setup script, and a maximum age.</summary>
public class ImageStampTests
{
    private static ImageSpec Spec() => ImageSpec.Create("bookworm", "", "http://deb.debian.org/debian", "minbase", "dbus,systemd");

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
                (Spec() with { Files = [(file, "/etc/app.conf")] }).Stamp,
                (Spec() with { Files = [(file, "/etc/other.conf")] }).Stamp,
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
        await ImageBuilder.RemoveTreeAsync(ImageDir, CancellationToken.None);
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
