namespace Nspawn.Build.Tests;

/// <summary>
/// Every test stack of tests/Stacks on a real machine, with the packed package, both ways a user runs it: ContainerTest,
/// and plain dotnet test with NspawnOnTest (VSTest mode, or MTP mode through the package's extension, its v1 or v2 build).
/// A passing run passes; a failing test (STACK_FAIL=1) fails the run with the machine's journal saved under the project's
/// TestResults; nothing is left behind. Each stack is built once (the failing run only runs it again) and boots one machine on
/// the host's network. An MTP 1 application cannot take its machines from ContainerTest: it gets NSPAWN0051 before anything is created.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class StackMachinesTests(PackageFixture package, StackMachinesTests.Copy copy) : IClassFixture<StackMachinesTests.Copy>
{
    /// <summary>The stacks, copied to a folder of their own with a feed of the packed package: the repository's stay clean.</summary>
    public sealed class Copy : IDisposable
    {
        public string Dir { get; } = Directory.CreateTempSubdirectory("nspawn-stack-machines-").FullName;

        public Copy()
        {
            foreach (var file in Directory.EnumerateFiles(Repo.Stacks, "*", SearchOption.AllDirectories)
                         .Where(f => !f.Contains("/bin/", StringComparison.Ordinal) && !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/TestResults/", StringComparison.Ordinal)))
            {
                var target = Path.Combine(Dir, Path.GetRelativePath(Repo.Stacks, file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }
            File.WriteAllText(Path.Combine(Dir, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="local" value="{Path.Combine(Repo.Root, "artifacts/feed")}" />
                    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
                  </packageSources>
                </configuration>
                """);
        }

        public void Dispose() => Directory.Delete(Dir, recursive: true);
    }

    /// <summary>Tests in each stack: the API's, the machine's, and one that fails when asked to.</summary>
    private const int Tests = 3;

    private static readonly Dictionary<string, string?> Pass = new() { ["STACK_MACHINES"] = "1" };
    private static readonly Dictionary<string, string?> Fail = new() { ["STACK_MACHINES"] = "1", ["STACK_FAIL"] = "1" };

    private string[] Args(params string[] more) => [$"-p:NspawnChrootsDir={Repo.ChrootsDir}", .. more];

    private string Journal(string stack) => Path.Combine(copy.Dir, stack, "TestResults/nspawn/default/journal.txt");

    /// <summary>The stack's folder, without the results of an earlier run.</summary>
    private string Fresh(string stack)
    {
        var dir = Path.Combine(copy.Dir, stack);
        if (Directory.Exists(Path.Combine(dir, "TestResults")))
            Directory.Delete(Path.Combine(dir, "TestResults"), recursive: true);
        return dir;
    }

    /// <summary>A passing run, then a failing one whose machine's journal is saved; nothing left after either.</summary>
    private async Task PassAndFailAsync(string stack, string command, string[] args)
    {
        var dir = Fresh(stack);
        var run = await package.RunProjectAsync(dir, command, args, Pass);
        Assert.True(run.ExitCode == 0, run.ToString());
        SamplesTests.AssertCounts(run, 0, Tests);
        Assert.False(File.Exists(Journal(stack)), "logs saved after passing tests: " + run);
        Leaks.AssertNone();

        var failing = await package.RunProjectAsync(dir, command, args, Fail);
        Assert.NotEqual(0, failing.ExitCode);
        SamplesTests.AssertCounts(failing, 1, Tests - 1);
        Assert.True(File.Exists(Journal(stack)) && File.ReadAllText(Journal(stack)).Length > 0, "no journal saved: " + failing);
        Leaks.AssertNone();
    }

    [Theory]
    [InlineData("XunitV3Mtp1")]
    [InlineData("XunitV3Mtp2")]
    [InlineData("MstestMtp1")]
    [InlineData("MstestMtp2")]
    [InlineData("MstestVSTest")]
    [InlineData("Nunit5")]
    [InlineData("Nunit6")]
    public async Task A_stack_passes_on_a_machine_through_plain_dotnet_test_and_a_failing_test_fails_it_with_the_journal_saved(string stack)
    {
        await package.RequireImageAsync();
        await PassAndFailAsync(stack, "test", Args("-p:NspawnOnTest=true"));
    }

    [Theory]
    [InlineData("XunitV3Mtp2")]
    [InlineData("MstestMtp2")]
    [InlineData("MstestVSTest")]
    [InlineData("Nunit5")]
    [InlineData("Nunit6")]
    public async Task A_stack_passes_on_a_machine_through_ContainerTest_and_a_failing_test_fails_it_with_the_journal_saved(string stack)
    {
        await package.RequireImageAsync();
        await PassAndFailAsync(stack, "build", Args());
    }

    [Theory]
    [InlineData("XunitV3Mtp1")]
    [InlineData("MstestMtp1")]
    public async Task ContainerTest_refuses_an_MTP_1_stack_with_NSPAWN0051_before_anything_is_created(string stack)
    {
        var run = await package.RunProjectAsync(Path.Combine(copy.Dir, stack), "build", Args(), Pass);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("error NSPAWN0051", run.Output);
        Assert.DoesNotContain("Started 'default'", run.Output);
        Leaks.AssertNone();
    }

    [Theory]
    [InlineData("XunitV3Mtp1")]
    [InlineData("XunitV3Mtp2")]
    public async Task In_MTP_mode_the_warm_pool_serves_a_test_and_the_machine_of_failed_tests_is_kept_until_NspawnStopKept(string stack)
    {
        await package.RequireImageAsync();
        var dir = Fresh(stack);
        var failing = await package.RunProjectAsync(dir, "test", Args("-p:NspawnOnTest=true", "-p:NspawnPoolSize=1", "-p:NspawnKeepOnFailure=true"),
            new Dictionary<string, string?>(Fail) { ["STACK_POOL"] = "1" });
        try
        {
            Assert.NotEqual(0, failing.ExitCode);
            // The machine's test passed: it took its own machine from the pool.
            SamplesTests.AssertCounts(failing, 1, Tests - 1);
            var kept = Assert.Single(MachineRegistry.List(), r => r.Kept).Machine;
            Assert.True(ProcessInfo.IsRunning(kept.LeaderPid, kept.LeaderStartTime), "the kept machine is not running");
            Assert.True(File.Exists(Journal(stack)), "no journal saved: " + failing);
        }
        finally
        {
            var stop = await package.RunProjectAsync(dir, "msbuild", Args("-t:NspawnStopKept"));
            Assert.True(stop.ExitCode == 0, stop.ToString());
        }
        Assert.DoesNotContain(MachineRegistry.List(), r => r.Kept);
        Leaks.AssertNone();
    }
}
