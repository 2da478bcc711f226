namespace Nspawn.Build.Tests;

/// <summary>`dotnet build -t:ContainerTest` on the sample, as a user runs it, with the package from the local feed.</summary>
[Collection(MachinesCollection.Name)]
public sealed class ContainerTestTests(PackageFixture package)
{
    [Fact]
    public async Task A_passing_suite_runs_in_a_machine_and_leaves_nothing()
    {
        var run = await package.FirstRunAsync();
        Assert.True(run.ExitCode == 0, run.ToString());
        // The sample's two machines on a private network of their own (NspawnNetwork=private), which goes with them.
        run.AssertMatches(@"Made the private network nsb-[0-9a-f]{6} \(10\.213\.\d+\.0/24");
        run.AssertMatches(@"Started .*'server' \(nspawn-server-[0-9a-f]{8}, image bookworm, address 10\.213\.\d+\.\d+");
        Assert.Contains("'client' (nspawn-client-", run.Output);
        run.AssertMatches($@"Passed!\s+- Failed:\s+0, Passed:\s+{PackageFixture.SampleTests}");
        Assert.Contains("Stopped 'server'", run.Output);
        Assert.Contains("Removed the private network nsb-", run.Output);
        // The sample keeps a pool of two: its three per-test machines and the boundary test's own came from it (the others have names of their own,
        // which on its private network are their hostnames, so they boot their own).
        Assert.Contains("Keeping 2 machines of image 'bookworm' booted ahead", run.Output);
        Assert.Matches(@"The pool of 2 booted \d+ machines; the tests took 4;", run.Output);
        Assert.Empty(Directory.GetFiles(Path.Combine(Repo.Sample, "obj"), "machines.json", SearchOption.AllDirectories));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_second_run_reuses_the_image_without_debootstrap()
    {
        await package.FirstRunAsync();
        var stamp = File.GetLastWriteTimeUtc(Path.Combine(Repo.ImageDir, ImageBuilder.StampPath));
        var run = await package.RunSampleAsync([]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("Image 'bookworm' is up to date", run.Output);
        Assert.DoesNotContain("debootstrap", run.Output);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(Path.Combine(Repo.ImageDir, ImageBuilder.StampPath)));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_failing_test_fails_the_build_and_still_stops_the_machine()
    {
        await package.FirstRunAsync();
        var run = await package.RunSampleAsync([], new Dictionary<string, string?> { ["SAMPLE_FAIL"] = "1" });
        Assert.NotEqual(0, run.ExitCode);
        run.AssertMatches($@"Failed!\s+- Failed:\s+1, Passed:\s+{PackageFixture.SampleTests - 1}");
        Assert.Contains("error NSPAWN0050", run.Output);
        Assert.Contains("Stopped 'server'", run.Output);
        Assert.Contains("Removed the private network nsb-", run.Output);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task The_suites_own_run_settings_reach_the_tests_with_ours()
    {
        await package.FirstRunAsync();
        var settings = Path.Combine(Directory.CreateTempSubdirectory("nspawn-settings-").FullName, "suite.runsettings");
        // SAMPLE_FAIL comes only from the suite's file: one failed test proves it arrived, four passing ones that ours did too.
        File.WriteAllText(settings, "<RunSettings><RunConfiguration><EnvironmentVariables><SAMPLE_FAIL>1</SAMPLE_FAIL></EnvironmentVariables></RunConfiguration></RunSettings>");
        var run = await package.RunSampleAsync([$"-p:VSTestSetting={settings}"]);
        Assert.NotEqual(0, run.ExitCode);
        run.AssertMatches($@"Failed!\s+- Failed:\s+1, Passed:\s+{PackageFixture.SampleTests - 1}");
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_boot_timeout_fails_the_build_before_the_tests_and_leaves_nothing()
    {
        await package.FirstRunAsync();
        var run = await package.RunSampleAsync(["-p:NspawnBootTimeout=0.05"]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("error NSPAWN0032", run.Output);
        Assert.DoesNotContain("Passed!", run.Output);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_failed_debootstrap_leaves_no_image_under_its_name()
    {
        await package.FirstRunAsync();
        var run = await package.RunSampleAsync(["-p:NspawnImage=no-such-suite"]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("error NSPAWN0021", run.Output);
        Assert.False(Directory.Exists(Path.Combine(Repo.ChrootsDir, "no-such-suite")));
        Assert.Empty(Directory.GetFileSystemEntries(Repo.ChrootsDir, ".#no-such-suite.new-*"));
        Leaks.AssertNone();
    }
}
