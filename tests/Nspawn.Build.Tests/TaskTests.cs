using static Nspawn.Build.Tests.Resolving;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Nspawn.Build.Tasks;

namespace Nspawn.Build.Tests;

/// <summary>The tasks run directly on a fake build engine: no root, no MSBuild process, no machine.</summary>
[Trait("Category", "Unit")]
public sealed class TaskTests
{
    [Fact]
    public void Unset_properties_take_the_defaults_from_one_place()
    {
        var (task, engine) = Resolve();
        Assert.True(task.Execute(), string.Join('\n', engine.ErrorLines));
        var machine = Assert.Single(task.ResolvedMachines);
        Assert.Equal(Defaults.MachineName, machine.ItemSpec);
        var options = ResolvedItems.ToLaunch(machine);
        Assert.Equal(Settings.BootTimeout.Default, options.BootTimeout);
        Assert.Equal(Settings.StopTimeout.Default, options.StopTimeout);
        Assert.Equal("/srv/test_chroots/" + Settings.Image.DefaultText, options.ImageDir);
        var image = ResolvedItems.ToImage(Assert.Single(task.Images));
        Assert.Equal((Settings.Image.DefaultText, Settings.Mirror.DefaultText, Settings.Variant.DefaultText), (image.Suite, image.Mirror, image.Variant));
        var store = ResolvedItems.ToStore(task.Store);
        Assert.Equal("/srv/test_chroots/" + Defaults.LoopFileName, store.ImageFile);
        Assert.Equal(8L << 30, store.ImageSize);
    }

    [Fact]
    public void The_stop_timeout_reaches_every_machine_and_its_record()
    {
        var (task, _) = Resolve(t =>
        {
            t.StopTimeout = "3";
            t.Machines = [Item("server"), Item("client", ("Image", "trixie"))];
        });
        Assert.True(task.Execute());
        foreach (var item in task.ResolvedMachines)
        {
            var options = ResolvedItems.ToLaunch(item);
            Assert.Equal(TimeSpan.FromSeconds(3), options.StopTimeout);
            Assert.Contains("--property=TimeoutStopSec=3s", options.SystemdRunArguments("/usr/bin/systemd-nspawn"));
            var record = Machine.Starting(options, null, []);
            Assert.Equal(TimeSpan.FromSeconds(3), MachinesFile.DeserializeOne(MachinesFile.SerializeOne(record)).StopTimeout);
        }
        Assert.Equal(["bookworm", "trixie"], task.Images.Select(i => i.ItemSpec));
    }

    [Fact]
    public void Resolved_images_carry_every_stamp_input()
    {
        var script = Path.GetTempFileName();
        try
        {
            var (task, _) = Resolve(t =>
            {
                t.Machines = [Item("web", ("Image", "web"))];
                t.ImageDefinitions = [Item("web", ("BaseImage", "bookworm"), ("SetupScript", script), ("Packages", "nginx")), Item("bookworm", ("Slim", "true"))];
                t.Exclude = "e2fsprogs";
            });
            Assert.True(task.Execute());
            var web = ResolvedItems.ToImage(Assert.Single(task.Images));
            Assert.Equal(["nginx"], web.Include);
            Assert.Equal(script, web.SetupScript);
            Assert.True(web.Base!.Slim);
            Assert.Equal(["e2fsprogs"], web.Base.Exclude);
            Assert.Equal((TestImages.Spec("bookworm", "", Settings.Mirror.DefaultText, Settings.Variant.DefaultText, Settings.Include.DefaultText) with { Slim = true, Exclude = ["e2fsprogs"] }).Stamp, web.Base.Stamp);
        }
        finally
        {
            File.Delete(script);
        }
    }

    [Theory]
    [InlineData("Packages", "dbus Bad!", "NSPAWN0009", "NspawnImageDefinition 'trixie': Packages holds 'Bad!'")]
    [InlineData("Mirror", "ftp://mirror/debian", "NSPAWN0006", "NspawnImageDefinition 'trixie': Mirror 'ftp://mirror/debian'")]
    [InlineData("Suite", "Trixie", "NSPAWN0004", "NspawnImageDefinition 'trixie': Suite 'Trixie'")]
    [InlineData("Slim", "maybe", "NSPAWN0011", "NspawnImageDefinition 'trixie': Slim 'maybe'")]
    public void An_error_names_the_metadata_the_user_wrote(string metadata, string value, string code, string message)
    {
        var (task, engine) = Resolve(t =>
        {
            t.Machines = [Item("web", ("Image", "trixie"))];
            t.ImageDefinitions = [Item("trixie", (metadata, value))];
        });
        Assert.False(task.Execute());
        var error = Assert.Single(engine.ErrorLines);
        Assert.StartsWith($"error {code}: {message}", error);
    }

    [Fact]
    public void A_property_error_names_the_property()
    {
        var (task, engine) = Resolve(t => t.Include = "dbus,Bad!");
        Assert.False(task.Execute());
        Assert.StartsWith("error NSPAWN0009: NspawnInclude holds 'Bad!'", Assert.Single(engine.ErrorLines));
    }

    private sealed class Failing(Exception failure) : NspawnTask
    {
        private protected override System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken) => throw failure;
    }

    [Theory]
    [InlineData(typeof(IOException), "NSPAWN0023")]
    [InlineData(typeof(UnauthorizedAccessException), "NSPAWN0023")]
    [InlineData(typeof(System.ComponentModel.Win32Exception), "NSPAWN0024")]
    public void Expected_failures_of_every_kind_become_one_coded_error(Type type, string code)
    {
        var engine = new FakeBuildEngine();
        var task = new Failing((Exception)Activator.CreateInstance(type, "boom")!) { BuildEngine = engine };
        Assert.False(task.Execute());
        var error = Assert.Single(engine.Errors);
        Assert.Equal(code, error.Code);
        Assert.Contains("boom", error.Message);
    }

    [Fact]
    public void A_bug_is_not_dressed_up_as_an_expected_failure() =>
        Assert.Throws<InvalidOperationException>(() => new Failing(new InvalidOperationException("bug")) { BuildEngine = new FakeBuildEngine() }.Execute());

    [Fact]
    public void Stopping_no_machines_needs_no_root_and_logs_nothing()
    {
        var engine = new FakeBuildEngine();
        Assert.True(new StopEphemeral { BuildEngine = engine }.Execute());
        Assert.Empty(engine.Errors);
        Assert.Empty(engine.Messages);
    }
}
