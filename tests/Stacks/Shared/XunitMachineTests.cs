using Nspawn.Testing;
using Xunit;

namespace Stacks;

public class MachineTests
{
    // StackMachinesTests boot the machine (STACK_MACHINES=1); tests/stacks.sh runs without one.
    [Fact]
    public async Task The_machine_runs_Debian()
    {
        if (Environment.GetEnvironmentVariable("STACK_MACHINES") != "1")
        {
            Assert.Null(Environment.GetEnvironmentVariable("NSPAWN_MACHINES_FILE"));
            return;
        }
        var result = await EphemeralMachine.FromEnvironment().ExecCheckedAsync(["cat", "/etc/os-release"]);
        Assert.Contains("ID=debian", result.StandardOutput);
        if (Environment.GetEnvironmentVariable("STACK_POOL") != "1")
            return;
        // With NspawnPoolSize, a machine of the test's own comes from the warm pool: its file there is taken while the test holds it.
        await using var own = await EphemeralMachine.StartAsync();
        Assert.True(File.Exists(Path.Combine(Environment.GetEnvironmentVariable("NSPAWN_POOL_DIR")!, own.Name + ".taken")), "not from the pool: " + own.Name);
    }

    // StackMachinesTests set STACK_FAIL=1: a failing test fails the run, and the machine's logs are saved.
    [Fact]
    public void Fails_when_asked_to() => Assert.NotEqual("1", Environment.GetEnvironmentVariable("STACK_FAIL"));
}
