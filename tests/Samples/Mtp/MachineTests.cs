using Nspawn.Testing;
using Xunit;

// One machine of the tests' own for the whole assembly: xunit v3's assembly fixture.
[assembly: AssemblyFixture(typeof(Mtp.Tests.OwnMachineFixture))]

namespace Mtp.Tests;

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
    public async Task On_a_private_network_the_machines_are_hosts_that_know_each_other()
    {
        // The package's tests run it with -p:NspawnNetwork=private and SAMPLE_NETWORK=private.
        if (Environment.GetEnvironmentVariable("SAMPLE_NETWORK") != "private")
            return;
        var machine = EphemeralMachine.FromEnvironment();
        Assert.NotNull(machine.Address);
        Assert.Equal("default", (await machine.ExecCheckedAsync(["hostname"], cancellationToken: TestContext.Current.CancellationToken)).StandardOutput.Trim());
        // The fixture's machine joined the same network and finds the other by name.
        var seen = await fixture.Machine.ExecCheckedAsync(["getent", "hosts", "default"], cancellationToken: TestContext.Current.CancellationToken);
        Assert.StartsWith(machine.Address + " ", seen.StandardOutput);
    }

    [Fact]
    public void Fails_when_asked_to()
    {
        // The package's tests set SAMPLE_FAIL=1 to check that a failing suite fails the run and still stops the machines.
        Assert.NotEqual("1", Environment.GetEnvironmentVariable("SAMPLE_FAIL"));
    }
}

public class CrashTests
{
    [Fact]
    public async Task The_test_host_can_wait_for_Ctrl_C()
    {
        // The package's tests set SAMPLE_HANG to a file's path and press Ctrl+C (SIGINT to the process group) once
        // this made the file: it then waits.
        if (Environment.GetEnvironmentVariable("SAMPLE_HANG") is { Length: > 0 } waiting)
        {
            await File.WriteAllTextAsync(waiting, "", TestContext.Current.CancellationToken);
            await Task.Delay(Timeout.Infinite, TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public void The_test_host_can_be_killed()
    {
        // The package's tests set SAMPLE_KILL=1 to kill the test host with SIGKILL: no machine may be left once the run ends.
        if (Environment.GetEnvironmentVariable("SAMPLE_KILL") == "1")
            System.Diagnostics.Process.GetCurrentProcess().Kill();
    }
}
