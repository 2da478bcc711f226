namespace Nspawn.Build.Tests;

/// <summary>
/// The end of a run waits for every machine it or its pool booted, whatever order MSBuild ends things in: the failing
/// plain 'dotnet test' (where the end of the build, not the targets, stops the machines and the warm pool) again and
/// again, beside processes that keep both cores busy, each time leaving nothing.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class RunEndStressTests(PackageFixture package) : IAsyncLifetime
{
    private const int Rounds = 4;
    private readonly List<System.Diagnostics.Process> _hogs = [];
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-stress-").FullName;

    public async Task InitializeAsync()
    {
        await package.RequireImageAsync();
        // Load: one busy shell per core, so that the pool's boots and the build's end race on a crowded host.
        for (var i = 0; i < Environment.ProcessorCount; i++)
            _hogs.Add(System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sh", ["-c", "while :; do :; done"]))!);
    }

    public Task DisposeAsync()
    {
        foreach (var hog in _hogs)
        {
            hog.Kill();
            hog.WaitForExit();
        }
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_failing_dotnet_test_under_load_leaves_nothing_round_after_round()
    {
        var settings = Path.Combine(_dir, "fail.runsettings");
        File.WriteAllText(settings, "<RunSettings><RunConfiguration><EnvironmentVariables><SAMPLE_FAIL>1</SAMPLE_FAIL></EnvironmentVariables></RunConfiguration></RunSettings>");
        for (var round = 1; round <= Rounds; round++)
        {
            var run = await package.RunSampleAsync(["-p:NspawnOnTest=true", "--settings", settings], command: "test");
            Assert.NotEqual(0, run.ExitCode);
            run.AssertMatches($@"Failed!\s+- Failed:\s+1, Passed:\s+{PackageFixture.SampleTests - 1}");
            var left = Leaks.New();
            Assert.True(left.Count == 0, $"round {round} left: {string.Join("; ", left)}\n{run.Output}");
        }
    }
}
