using Nspawn.Testing;
using Xunit;
using Xunit.Abstractions;

namespace Sample.Tests;

/// <summary>A machine of the tests' own, booted from ContainerTest's image, for a class or a collection.</summary>
public sealed class OwnMachineFixture : IAsyncLifetime
{
    public EphemeralMachine Machine { get; private set; } = null!;

    public async Task InitializeAsync() => Machine = await EphemeralMachine.StartAsync(new() { LogicalName = "fixture" });

    public async Task DisposeAsync() => await Machine.DisposeAsync();
}

/// <summary>One machine for the whole class.</summary>
public class ClassFixtureTests(OwnMachineFixture fixture) : IClassFixture<OwnMachineFixture>
{
    [Fact]
    public void The_class_gets_a_machine_of_its_own()
    {
        Assert.NotEqual(EphemeralMachine.FromEnvironment().Name, fixture.Machine.Name);
        Assert.True(fixture.Machine.IsOwned);
    }

    [Fact]
    public async Task Its_machine_runs_commands_as_a_user()
    {
        var result = await fixture.Machine.ExecCheckedAsync(["id", "-un"], new ExecOptions { User = "nobody" });
        Assert.Equal("nobody", result.StandardOutput.Trim());
    }
}

[CollectionDefinition(Name)]
public class SharedMachineCollection : ICollectionFixture<OwnMachineFixture>
{
    public const string Name = "one machine for a collection";

    private static readonly System.Collections.Concurrent.ConcurrentBag<string> Seen = [];

    public static async Task SeeAsync(EphemeralMachine machine)
    {
        Seen.Add(machine.Name);
        Assert.Single(Seen.Distinct());
        Assert.True(await machine.IsSystemRunningAsync());
    }
}

/// <summary>Two classes in one collection share one machine: each checks that every class saw the same one.</summary>
[Collection(SharedMachineCollection.Name)]
public class CollectionFirstTests(OwnMachineFixture fixture)
{
    [Fact]
    public async Task Shares_the_collections_machine() => await SharedMachineCollection.SeeAsync(fixture.Machine);
}

[Collection(SharedMachineCollection.Name)]
public class CollectionSecondTests(OwnMachineFixture fixture)
{
    [Fact]
    public async Task Shares_the_collections_machine() => await SharedMachineCollection.SeeAsync(fixture.Machine);
}

public class OwnMachineTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_test_can_boot_a_machine_of_its_own()
    {
        // Its console goes to the test's output, which the test runner shows when the test fails.
        await using var machine = await EphemeralMachine.StartAsync(new() { LogicalName = "own", OnConsole = output.WriteLine });
        Assert.True(await machine.IsSystemRunningAsync());
        Assert.Equal(0, (await machine.ExecAsync("true")).ExitCode);
    }
}
