using Nspawn.Testing;
using NUnit.Framework;

namespace Nunit.Tests;

public class MachineTests
{
    // One machine of the fixture's own, booted once for all its tests: NUnit's OneTimeSetUp.
    private EphemeralMachine _own = null!;

    [OneTimeSetUp]
    public async Task StartOwnMachineAsync() => _own = await EphemeralMachine.StartAsync(new() { LogicalName = "fixture" });

    [OneTimeTearDown]
    public async Task StopOwnMachineAsync() => await _own.DisposeAsync();

    [Test]
    public async Task The_machine_from_the_environment_runs_Debian()
    {
        var machine = EphemeralMachine.FromEnvironment();
        Assert.That(machine.Name, Is.EqualTo(Environment.GetEnvironmentVariable("NSPAWN_MACHINE")));
        Assert.That((await machine.ExecCheckedAsync("cat", "/etc/os-release")).StandardOutput, Does.Contain("ID=debian"));
    }

    [Test]
    public async Task The_fixture_has_a_machine_of_its_own()
    {
        Assert.That(_own.Name, Is.Not.EqualTo(EphemeralMachine.FromEnvironment().Name));
        var result = await _own.ExecCheckedAsync(["id", "-un"], new ExecOptions { User = "nobody" });
        Assert.That(result.StandardOutput.Trim(), Is.EqualTo("nobody"));
    }

    [Test]
    public void Fails_when_asked_to()
    {
        // The package's tests set SAMPLE_FAIL=1 to check that a failing suite fails the run and still stops the machines.
        Assert.That(Environment.GetEnvironmentVariable("SAMPLE_FAIL"), Is.Not.EqualTo("1"));
    }
}
