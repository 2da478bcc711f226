using Microsoft.VisualStudio.TestTools.UnitTesting;
using Nspawn.Testing;

namespace Mstest.Tests;

[TestClass]
public class MachineTests
{
    // One machine of the class's own, booted once for all its tests: MSTest's ClassInitialize.
    private static EphemeralMachine _own = null!;

    [ClassInitialize]
    public static async Task StartOwnMachineAsync(TestContext _) => _own = await EphemeralMachine.StartAsync(new() { LogicalName = "fixture" });

    [ClassCleanup]
    public static async Task StopOwnMachineAsync() => await _own.DisposeAsync();

    [TestMethod]
    public async Task The_machine_from_the_environment_runs_Debian()
    {
        var machine = EphemeralMachine.FromEnvironment();
        Assert.AreEqual(Environment.GetEnvironmentVariable("NSPAWN_MACHINE"), machine.Name);
        Assert.Contains("ID=debian", (await machine.ExecCheckedAsync("cat", "/etc/os-release")).StandardOutput);
    }

    [TestMethod]
    public async Task The_class_has_a_machine_of_its_own()
    {
        Assert.AreNotEqual(EphemeralMachine.FromEnvironment().Name, _own.Name);
        var result = await _own.ExecCheckedAsync(["id", "-un"], new ExecOptions { User = "nobody" });
        Assert.AreEqual("nobody", result.StandardOutput.Trim());
    }

    [TestMethod]
    public void Fails_when_asked_to()
    {
        // The package's tests set SAMPLE_FAIL=1 to check that a failing suite fails the run and still stops the machines.
        Assert.AreNotEqual("1", Environment.GetEnvironmentVariable("SAMPLE_FAIL"));
    }
}
