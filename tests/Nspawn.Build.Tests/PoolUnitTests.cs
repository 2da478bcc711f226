using Nspawn.Testing;

namespace Nspawn.Build.Tests;

/// <summary>The warm pool's setting and its hand-off folder: no root, no machine.</summary>
[Trait("Category", "Unit")]
public sealed class PoolUnitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-pool-").FullName;
    private static readonly PoolTemplate Template = new("/srv/test_chroots/bookworm", EphemeralMode.Snapshot, TimeSpan.FromSeconds(15), NetworkMode.Host, PrivateUsers: true);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("0", 0)]
    [InlineData(" 2 ", 2)]
    [InlineData("16", 16)]
    public void A_pool_size_is_a_small_whole_number(string value, int expected) =>
        Assert.Equal(expected, Validate.PoolSize(value, "NspawnPoolSize"));

    [Theory]
    [InlineData("two")]
    [InlineData("-1")]
    [InlineData("1.5")]
    [InlineData("17")]
    [InlineData("")]
    public void Anything_else_is_NSPAWN0080(string value)
    {
        var e = Assert.Throws<NspawnException>(() => Validate.PoolSize(value, "NspawnPoolSize"));
        Assert.Equal(ErrorCodes.BadPoolSize, e.Code);
        Assert.Contains($"NspawnPoolSize '{value}'", e.Message);
    }

    [Fact]
    public void The_resolver_defaults_to_no_pool_and_checks_the_setting()
    {
        var settings = new ProjectSettings { BaseDir = _dir, ChrootsDir = Path.Combine(_dir, "test_chroots") };
        Assert.Equal(Settings.PoolSize.Default, SettingsResolver.Resolve(settings).PoolSize);
        Assert.Equal(3, SettingsResolver.Resolve(settings with { PoolSize = "3" }).PoolSize);
        Assert.Equal(ErrorCodes.BadPoolSize, Assert.Throws<NspawnException>(() => SettingsResolver.Resolve(settings with { PoolSize = "many" })).Code);
    }

    [Fact]
    public void Only_a_request_like_the_pools_machines_takes_one()
    {
        Assert.True(PoolClient.Matches(new StartOptions(), Template.ImageDir, Template));
        Assert.True(PoolClient.Matches(new StartOptions { LogicalName = "own", Mode = EphemeralMode.Snapshot, StopTimeout = TimeSpan.FromSeconds(15), BootTimeout = TimeSpan.FromSeconds(5) }, Template.ImageDir, Template));
        Assert.False(PoolClient.Matches(new StartOptions(), "/srv/test_chroots/trixie", Template));
        Assert.False(PoolClient.Matches(new StartOptions { Mode = EphemeralMode.Overlay }, Template.ImageDir, Template));
        Assert.False(PoolClient.Matches(new StartOptions { StopTimeout = TimeSpan.FromSeconds(3) }, Template.ImageDir, Template));
        Assert.False(PoolClient.Matches(new StartOptions { NspawnArguments = ["--bind-ro=/srv"] }, Template.ImageDir, Template));
    }

    [Fact]
    public void A_ready_machine_is_claimed_once_and_a_dead_one_never()
    {
        var dir = PoolDir.Create(_dir, Template);
        Assert.Equal(Template, PoolDir.Template(dir));
        var self = Environment.ProcessId;
        // This process stands for a live leader; PID 1 with a wrong start time for one that is gone.
        var live = Machine("nspawn-pool-aaaaaaaa", self, ProcessInfo.StartTime(self)!.Value);
        PoolDir.Offer(dir, Machine("nspawn-pool-bbbbbbbb", 1, 12345));
        Assert.Null(PoolDir.TryClaim(dir));
        PoolDir.Offer(dir, live);
        Assert.Equal(1, PoolDir.ReadyCount(dir));
        var claims = Enumerable.Range(0, 8).AsParallel().Select(_ => PoolDir.TryClaim(dir)).ToList();
        Assert.Equal(live.Name, Assert.Single(claims, c => c is not null)!.Name);
        Assert.Equal(0, PoolDir.ReadyCount(dir));
        Assert.Equal(2, PoolDir.TakenCount(dir));
        // Handed back once, for the pool to stop; a second hand-back finds nothing.
        Assert.True(PoolDir.Return(dir, live.Name));
        Assert.False(PoolDir.Return(dir, live.Name));
        Assert.Equal(live.Name, Assert.Single(PoolDir.TakeReturned(dir)).Name);
        Assert.Empty(PoolDir.TakeReturned(dir));
        Assert.Equal(1, PoolDir.TakenCount(dir));
        Assert.Null(PoolDir.Failure(dir));
        PoolDir.MarkFailed(dir, "no systemd");
        Assert.Equal("no systemd", PoolDir.Failure(dir));
    }

    private static Machine Machine(string name, int leader, ulong start) =>
        new("pool", name, "bookworm", Template.ImageDir, leader, start, leader, start, null, null, []);
}
