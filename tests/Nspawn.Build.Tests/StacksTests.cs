namespace Nspawn.Build.Tests;

/// <summary>
/// Adding the package never breaks a project: tests/stacks.sh builds and runs a test project of every stack users
/// have (xunit.v3 on MTP 1 and 2, MSTest 3 and 4, NUnit adapters 5 and 6, xunit 2) against the packed package.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class StacksTests
{
    [Fact]
    public async Task Every_test_stack_compiles_and_runs_with_the_package()
    {
        var run = await Shell.RunAsync("bash", [Path.Combine(Repo.Root, "tests/stacks.sh")], workingDir: Repo.Root);
        Assert.True(run.ExitCode == 0, run.ToString());
    }
}
