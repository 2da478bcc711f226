using System.Text.RegularExpressions;

namespace Nspawn.Build.Tests;

/// <summary>
/// The samples of every framework and mode (tests/Samples; xunit v2's tests/Sample has tests of its own), each a
/// user's project with the packed package, run both ways: ContainerTest, and plain dotnet test with NspawnOnTest.
/// Each passes; a failing test fails the run with every machine stopped.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class SamplesTests(PackageFixture package)
{
    /// <summary>Each sample's folder and how many tests it has.</summary>
    public static TheoryData<string, int> Samples => new()
    {
        { "XunitV3", 3 },
        { "Nunit", 3 },
        { "Mstest", 3 },
        // xunit v3 in MTP mode (its global.json): the package's MTP extension boots the machines under plain dotnet test.
        { "Mtp", 6 },
    };

    private static string Dir(string sample) => Path.Combine(Repo.Samples, sample);

    /// <summary>The counts as VSTest, MTP through MSBuild (both "Failed: 0, Passed: 3") or dotnet test in MTP mode ("failed: 0 succeeded: 3") print them.</summary>
    private static void AssertCounts(RunResult run, int failed, int passed) =>
        Assert.True(Regex.IsMatch(run.Output, $@"Failed:\s+{failed}, Passed:\s+{passed},") || Regex.IsMatch(run.Output, $@"failed:\s+{failed}\s+succeeded:\s+{passed}\s"),
            $"expected {failed} failed and {passed} passed: {run}");

    [Theory]
    [MemberData(nameof(Samples))]
    public async Task A_sample_passes_through_ContainerTest_and_a_failing_test_fails_it_with_the_machines_stopped(string sample, int tests)
    {
        await package.RequireImageAsync();
        var run = await package.RunProjectAsync(Dir(sample), "build", []);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("Started 'default' (nspawn-default-", run.Output);
        AssertCounts(run, 0, tests);
        Assert.Contains("Stopped 'default'", run.Output);
        Leaks.AssertNone();

        var failing = await package.RunProjectAsync(Dir(sample), "build", [], new Dictionary<string, string?> { ["SAMPLE_FAIL"] = "1" });
        Assert.NotEqual(0, failing.ExitCode);
        AssertCounts(failing, 1, tests - 1);
        Assert.Contains("error NSPAWN0050", failing.Output);
        Assert.Contains("Stopped 'default'", failing.Output);
        Leaks.AssertNone();
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public async Task A_sample_passes_through_plain_dotnet_test_and_a_failing_test_fails_it_with_the_machines_stopped(string sample, int tests)
    {
        await package.RequireImageAsync();
        var run = await package.RunProjectAsync(Dir(sample), "test", ["-p:NspawnOnTest=true"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        AssertCounts(run, 0, tests);
        Leaks.AssertNone();

        var failing = await package.RunProjectAsync(Dir(sample), "test", ["-p:NspawnOnTest=true"], new Dictionary<string, string?> { ["SAMPLE_FAIL"] = "1" });
        Assert.NotEqual(0, failing.ExitCode);
        AssertCounts(failing, 1, tests - 1);
        Leaks.AssertNone();
    }

    [Theory]
    [InlineData("Nunit", 3)]
    [InlineData("Mstest", 3)]
    public async Task NUnit_and_MSTest_as_MTP_applications_pass_both_ways(string sample, int tests)
    {
        await package.RequireImageAsync();
        // A copy, with the MTP sample's global.json (MTP mode for dotnet test): the sample's own folders stay built for VSTest.
        var copy = Directory.CreateTempSubdirectory("nspawn-mtp-mode-").FullName;
        try
        {
            foreach (var file in Directory.EnumerateFiles(Dir(sample)).Concat(Directory.EnumerateFiles(Repo.Samples, "Directory.*")).Append(Path.Combine(Dir("Mtp"), "global.json")))
                File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
            File.WriteAllText(Path.Combine(copy, "nuget.config"), File.ReadAllText(Path.Combine(Repo.Samples, "nuget.config"))
                .Replace("../../artifacts/feed", Path.Combine(Repo.Root, "artifacts/feed")));
            string[] mtp = ["-p:SampleMtp=true", $"-p:NspawnChrootsDir={Repo.ChrootsDir}"];

            var contained = await package.RunProjectAsync(copy, "build", mtp);
            Assert.True(contained.ExitCode == 0, contained.ToString());
            Assert.Contains("Tests succeeded:", contained.Output); // MTP's InvokeTestingPlatform, not VSTest
            AssertCounts(contained, 0, tests);
            Leaks.AssertNone();

            var plain = await package.RunProjectAsync(copy, "test", [.. mtp, "-p:NspawnOnTest=true"]);
            Assert.True(plain.ExitCode == 0, plain.ToString());
            Assert.Matches($@"succeeded:\s+{tests}\s", plain.Output);
            Leaks.AssertNone();
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    [Fact]
    public async Task In_MTP_mode_plain_dotnet_test_makes_the_private_network_and_removes_it()
    {
        await package.RequireImageAsync();
        var run = await package.RunProjectAsync(Dir("Mtp"), "test", ["-p:NspawnOnTest=true", "-p:NspawnNetwork=private"],
            new Dictionary<string, string?> { ["SAMPLE_NETWORK"] = "private" });
        Assert.True(run.ExitCode == 0, run.ToString());
        AssertCounts(run, 0, 6);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Without_NspawnOnTest_an_MTP_application_boots_nothing_and_its_tests_are_told_why()
    {
        await package.RequireImageAsync();
        await package.RunProjectAsync(Dir("Mtp"), "test", ["-p:NspawnOnTest=true"]);
        var run = await package.RunProjectAsync(Dir("Mtp"), "test", []);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("NSPAWN_MACHINES_FILE is not set", run.Output);
        // The launch file of the run before is gone with the opt-in.
        Assert.Empty(Directory.GetFiles(Path.Combine(Dir("Mtp"), "bin"), "*.nspawn.json", SearchOption.AllDirectories));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_boot_that_fails_in_MTP_mode_fails_the_run_and_leaves_nothing()
    {
        await package.RequireImageAsync();
        var run = await package.RunProjectAsync(Dir("Mtp"), "test", ["-p:NspawnOnTest=true", "-p:NspawnBootTimeout=0.05"]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.DoesNotMatch(@"succeeded:\s+[1-9]", run.Output);
        Leaks.AssertNone();
    }

    [Theory]
    [InlineData("test")]
    [InlineData("build")]
    public async Task An_MTP_test_host_killed_with_SIGKILL_leaves_no_machine_once_the_run_ends(string command)
    {
        await package.RequireImageAsync();
        // The sample kills its own test host while its assembly fixture's machine runs.
        var run = await package.RunProjectAsync(Dir("Mtp"), command, command == "test" ? ["-p:NspawnOnTest=true"] : [], new Dictionary<string, string?> { ["SAMPLE_KILL"] = "1" });
        Assert.NotEqual(0, run.ExitCode);
        Assert.DoesNotMatch(@"succeeded:\s+5|Passed:\s+5", run.Output);
        // Through MSBuild the stop says so; in MTP mode the controller does it out of sight. Either way nothing is left.
        if (command == "build")
            Assert.Contains("Removed a leftover of a process that is gone: machine nspawn-fixture-", run.Output);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Ctrl_C_in_MTP_mode_stops_the_machines()
    {
        await package.RequireImageAsync();
        // The waiting test says it waits by creating this file (SAMPLE_HANG names it).
        var waiting = Path.Combine(Path.GetTempPath(), $"nspawn-sample-hang-{Guid.NewGuid():N}");
        var before = Records.Baseline();
        // setsid: dotnet test leads a process group of its own, which gets SIGINT as a terminal's Ctrl+C sends it.
        var run = BackgroundRun.Start(["setsid", "dotnet", "test", $"-p:NspawnBuildVersion={package.Version}", "-p:NspawnOnTest=true"],
            new Dictionary<string, string?> { ["NUGET_PACKAGES"] = package.NuGetCache, ["SAMPLE_HANG"] = waiting }, Dir("Mtp"));
        try
        {
            // The controller's machine and the assembly fixture's are up, and a test waits for Ctrl+C.
            var running = await Shell.WaitUntilAsync(() => File.Exists(waiting), TimeSpan.FromMinutes(3));
            Assert.True(running, run.Output);
            Assert.Single(Records.Since(before), r => r.Machine.Name.StartsWith("nspawn-fixture-", StringComparison.Ordinal));
            Assert.Single(Records.Since(before), r => r.Machine.Name.StartsWith("nspawn-default-", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(waiting);
        }
        await Cli.Wrap("kill").WithArguments(["-INT", "--", $"-{run.Pid}"]).ExecuteAsync();
        var result = await run.WaitForExitAsync(TimeSpan.FromMinutes(2));
        Assert.NotNull(result);
        Assert.NotEqual(0, result.ExitCode);
        Leaks.AssertNone();
    }
}
