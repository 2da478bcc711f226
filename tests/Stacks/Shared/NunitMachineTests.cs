using Nspawn.Testing;
using NUnit.Framework;

namespace Stacks;

public class MachineTests
{
    // StackMachinesTests boot the machine (STACK_MACHINES=1); tests/stacks.sh runs without one.
    [Test]
    public async Task The_machine_runs_Debian()
    {
        if (Environment.GetEnvironmentVariable("STACK_MACHINES") != "1")
        {
            Assert.That(Environment.GetEnvironmentVariable("NSPAWN_MACHINES_FILE"), Is.Null);
            return;
        }
        var result = await EphemeralMachine.FromEnvironment().ExecCheckedAsync("cat", "/etc/os-release");
        Assert.That(result.StandardOutput, Does.Contain("ID=debian"));
    }

    // StackMachinesTests set STACK_FAIL=1: a failing test fails the run, and the machine's logs are saved.
    [Test]
    public void Fails_when_asked_to() => Assert.That(Environment.GetEnvironmentVariable("STACK_FAIL"), Is.Not.EqualTo("1"));
}
