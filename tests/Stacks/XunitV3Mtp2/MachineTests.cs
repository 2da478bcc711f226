using Nspawn.Testing;
using Xunit;

namespace XunitV3Mtp2;

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
        var result = await EphemeralMachine.FromEnvironment().ExecCheckedAsync(["cat", "/etc/os-release"], cancellationToken: TestContext.Current.CancellationToken);
        Assert.Contains("ID=debian", result.StandardOutput);
    }

    // StackMachinesTests set STACK_FAIL=1: a failing test fails the run, and the machine's logs are saved.
    [Fact]
    public void Fails_when_asked_to() => Assert.NotEqual("1", Environment.GetEnvironmentVariable("STACK_FAIL"));
}
