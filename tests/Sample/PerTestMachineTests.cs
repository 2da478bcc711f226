using Nspawn.Testing;
using Xunit;

namespace Sample.Tests;

/// <summary>
/// A machine for each test: xunit makes a new instance of the class for every test, and IAsyncLifetime starts and
/// stops its machine. With NspawnPoolSize (set in this project) each one is taken from the machines the build keeps
/// booted ahead, so a test does not wait for a boot. On a private network (this project's) a pool machine's name is
/// its hostname, so only a machine with the default name ("test") comes from the pool.
/// </summary>
public class PerTestMachineTests : IAsyncLifetime
{
    private EphemeralMachine _machine = null!;

    public async Task InitializeAsync() => _machine = await EphemeralMachine.StartAsync(new());

    public async Task DisposeAsync() => await _machine.DisposeAsync();

    [Fact]
    public async Task Gets_a_fresh_machine_1() => await AssertFreshAsync();

    [Fact]
    public async Task Gets_a_fresh_machine_2() => await AssertFreshAsync();

    [Fact]
    public async Task Gets_a_fresh_machine_3() => await AssertFreshAsync();

    /// <summary>No other test has used this machine: the file every test leaves behind is not there yet.</summary>
    private async Task AssertFreshAsync()
    {
        Assert.Equal("test", _machine.LogicalName);
        Assert.Equal("test", (await _machine.ExecCheckedAsync("hostname")).StandardOutput.Trim());
        if (Environment.GetEnvironmentVariable("NSPAWN_POOL_DIR") is { Length: > 0 })
            Assert.StartsWith("nspawn-pool-", _machine.Name);
        Assert.NotEqual(0, (await _machine.ExecAsync("test", "-e", "/srv/used-by-a-test")).ExitCode);
        await _machine.ExecCheckedAsync("touch", "/srv/used-by-a-test");
    }
}
