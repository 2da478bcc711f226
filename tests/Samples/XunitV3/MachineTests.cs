using Nspawn.Testing;
using Xunit;

// One machine of the tests' own for the whole assembly: xunit v3's assembly fixture.
[assembly: AssemblyFixture(typeof(XunitV3.Tests.OwnMachineFixture))]

namespace XunitV3.Tests;

/// <summary>A machine booted from ContainerTest's image, for every test of the assembly that asks for it.</summary>
public sealed class OwnMachineFixture : IAsyncLifetime
{
    public EphemeralMachine Machine { get; private set; } = null!;

    public async ValueTask InitializeAsync() => Machine = await EphemeralMachine.StartAsync(new() { LogicalName = "fixture" });

    public async ValueTask DisposeAsync() => await Machine.DisposeAsync();
}

public class MachineTests(OwnMachineFixture fixture)
{
    [Fact]
    public async Task The_machine_from_the_environment_runs_Debian()
    {
        var machine = EphemeralMachine.FromEnvironment();
        Assert.Equal(Environment.GetEnvironmentVariable("NSPAWN_MACHINE"), machine.Name);
        Assert.Contains("ID=debian", (await machine.ExecCheckedAsync(["cat", "/etc/os-release"], cancellationToken: TestContext.Current.CancellationToken)).StandardOutput);
    }

    [Fact]
    public async Task The_assembly_fixture_has_a_machine_of_its_own()
    {
        Assert.NotEqual(EphemeralMachine.FromEnvironment().Name, fixture.Machine.Name);
        var result = await fixture.Machine.ExecCheckedAsync(["id", "-un"], new ExecOptions { User = "nobody" }, TestContext.Current.CancellationToken);
        Assert.Equal("nobody", result.StandardOutput.Trim());
    }

    [Fact]
    public void Fails_when_asked_to()
    {
        // The package's tests set SAMPLE_FAIL=1 to check that a failing suite fails the run and still stops the machines.
        Assert.NotEqual("1", Environment.GetEnvironmentVariable("SAMPLE_FAIL"));
    }
}
