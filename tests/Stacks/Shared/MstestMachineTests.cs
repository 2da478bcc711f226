using Microsoft.VisualStudio.TestTools.UnitTesting;
using Nspawn.Testing;

namespace Stacks;

[TestClass]
public class MachineTests
{
    // StackMachinesTests boot the machine (STACK_MACHINES=1); tests/stacks.sh runs without one.
    [TestMethod]
    public async Task The_machine_runs_Debian()
    {
        if (Environment.GetEnvironmentVariable("STACK_MACHINES") != "1")
        {
            Assert.IsNull(Environment.GetEnvironmentVariable("NSPAWN_MACHINES_FILE"));
            return;
        }
        var result = await EphemeralMachine.FromEnvironment().ExecCheckedAsync("cat", "/etc/os-release");
        Assert.IsTrue(result.StandardOutput.Contains("ID=debian"), result.StandardOutput);
    }

    // StackMachinesTests set STACK_FAIL=1: a failing test fails the run, and the machine's logs are saved.
    [TestMethod]
    public void Fails_when_asked_to() => Assert.AreNotEqual("1", Environment.GetEnvironmentVariable("STACK_FAIL"));
}
