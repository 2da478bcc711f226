namespace Nspawn.Build.Tests;

/// <summary>A test's own machine (EphemeralMachine.StartAsync) follows the project's settings, as ContainerTest's machine carries them.</summary>
[Trait("Category", "Unit")]
public sealed class OwnMachineSettingsTests
{
    // ContainerTest's machine: booted by the systemd launcher, as an overlay machine, without a user namespace, with the project's timeouts.
    private static readonly Machine Model = new("default", "nspawn-default-1a2b3c4d", "bookworm", "/c/bookworm", 42, 1, 41, 1, Snapshot: null, Unit: "nspawn-default-1a2b3c4d.service", [])
    {
        BootTimeout = TimeSpan.FromSeconds(123), StopTimeout = TimeSpan.FromSeconds(7), UidShift = null,
    };

    private static LaunchOptions Own(StartOptions options, Machine? model = null) =>
        EphemeralMachine.OwnLaunch(options, model ?? Model, "/c/bookworm", NetworkMode.Host, null);

    [Fact]
    public void The_boot_timeout_is_the_projects() => Assert.Equal(TimeSpan.FromSeconds(123), Own(new StartOptions()).BootTimeout);

    [Fact]
    public void The_stop_timeout_is_the_projects() => Assert.Equal(TimeSpan.FromSeconds(7), Own(new StartOptions()).StopTimeout);

    [Fact]
    public void The_launcher_is_the_projects()
    {
        Assert.True(Own(new StartOptions()).UseSystemdRun);
        Assert.False(Own(new StartOptions(), Model with { Unit = null }).UseSystemdRun);
    }

    [Fact]
    public void The_mode_is_the_projects()
    {
        Assert.Equal(EphemeralMode.Overlay, Own(new StartOptions()).Mode);
        Assert.Equal(EphemeralMode.Snapshot, Own(new StartOptions(), Model with { Snapshot = "/c/.#machine.x" }).Mode);
    }

    [Fact]
    public void The_user_namespace_is_the_projects()
    {
        Assert.False(Own(new StartOptions()).PrivateUsers);
        Assert.True(Own(new StartOptions(), Model with { UidShift = 0x70000000 }).PrivateUsers);
    }

    [Fact]
    public void What_the_test_asks_for_comes_first()
    {
        var own = Own(new StartOptions
        {
            BootTimeout = TimeSpan.FromSeconds(9), StopTimeout = TimeSpan.FromSeconds(3), Mode = EphemeralMode.Snapshot, PrivateUsers = true,
        });
        Assert.Equal((TimeSpan.FromSeconds(9), TimeSpan.FromSeconds(3), EphemeralMode.Snapshot, true), (own.BootTimeout, own.StopTimeout, own.Mode, own.PrivateUsers));
    }

    [Fact]
    public void The_network_is_the_one_given()
    {
        var network = new PrivateNetwork("nsb-abcdef", "10.213.0.0/24", false);
        var own = EphemeralMachine.OwnLaunch(new StartOptions(), Model, "/c/bookworm", NetworkMode.Private, network);
        Assert.Equal((NetworkMode.Private, network), (own.Network, own.PrivateNetwork));
    }
}
