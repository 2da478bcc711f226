using System.Security;
using System.Text.RegularExpressions;

namespace Nspawn.Build.Tests;

/// <summary>
/// NspawnStopTimeout on every stop path, with a guest that ignores power-off (a unit whose stop never ends):
/// each stop is given the 3 s asked for (not the default 15 s), and kills the guest. How long a stop takes is the
/// benchmark's business: here the stop's own report, or the machine the stop works from, says which timeout it used.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class StopTimeoutTests(PackageFixture package) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-stop-").FullName;
    private TempImage _hang = null!;

    public async Task InitializeAsync()
    {
        await package.RequireImageAsync();
        _hang = await TempImage.WithUnitAsync("hang", "hang.service",
            "[Service]\nExecStart=/bin/sleep infinity\nExecStop=/bin/sleep infinity\nTimeoutStopSec=infinity\n[Install]\nWantedBy=multi-user.target\n");
    }

    public async Task DisposeAsync()
    {
        await _hang.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    // The hang image has the stamp of the default image, so it is up to date as an image of suite bookworm.
    private string[] Properties => [$"-p:NspawnImage={_hang.Name}", "-p:NspawnSuite=bookworm", "-p:NspawnStopTimeout=3"];

    /// <summary>Far past every stop here (the default stop timeout's included): only turns a hang into a failure.</summary>
    private static readonly TimeSpan Hang = TimeSpan.FromMinutes(2);

    /// <summary>The build's report of a stop that had to kill, with the stop timeout it waited (StopOutcome's words).</summary>
    private static void AssertKilledAfter3s(string output, string logical) =>
        Assert.True(Regex.IsMatch(output, $@"'{logical}' \(nspawn-{logical}-[0-9a-f]+\) in [0-9.]+ s, killed: it did not power off within its stop timeout of 3 s \(NspawnStopTimeout\)"),
            "no stop report with a kill after 3 s:\n" + output);

    /// <summary>The stop timeout in the record of the one machine started since <paramref name="before"/>, which every stop path (the backstop's included) works from.</summary>
    private static TimeSpan RecordedStopTimeout(HashSet<string> before) => Assert.Single(Records.Since(before)).Machine.StopTimeout;

    [Fact]
    public async Task NspawnStopMachines_kills_a_guest_that_ignores_power_off_after_the_timeout()
    {
        var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir).RunAsync(["-t:ContainerTest", .. Properties]);
        Assert.True(run.ExitCode == 0, run.ToString());
        AssertKilledAfter3s(run.Output, "default");
        // A machine that fails to stop has its logs kept, taken before the kill: the console shows what it waited for.
        Assert.Contains("hang.service", File.ReadAllText(Path.Combine(_dir, "TestResults/nspawn/default/console.txt")));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task The_rollback_after_a_failed_start_honours_it()
    {
        await using var broken = await TempImage.WithoutInitAsync();
        var items = $"""
            <NspawnMachine Include="hang" /><NspawnMachine Include="broken" Image="{broken.Name}" />
            <NspawnImageDefinition Include="{broken.Name}" Suite="bookworm" />
            """;
        var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir, items).RunAsync(["-t:ContainerTest", .. Properties]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains($"error {ErrorCodes.BootFailed}", run.Output);
        Assert.Contains("since another machine did not start", run.Output);
        AssertKilledAfter3s(run.Output, "hang");
        Leaks.AssertNone();
    }

    [Fact]
    public async Task The_build_end_backstop_honours_it()
    {
        // NspawnStartMachines, then a Build that waits on a gate file: nothing stops the machine but the backstop when the build ends.
        var gate = Path.Combine(_dir, "gate");
        File.WriteAllText(gate, "");
        var project = new ConsumerProject(package, _dir, Repo.ChrootsDir, buildBody: $"""<Exec Command="while [ -e '{SecurityElement.Escape(gate)}' ]; do sleep 0.1; done" />""");
        var before = Records.Baseline();
        var run = BackgroundRun.Start(project.Command(["-t:NspawnStartMachines;Build", .. Properties]));
        Assert.True(await run.WaitForOutputAsync("Started 'default'", Hang), run.Output);
        Assert.Equal(TimeSpan.FromSeconds(3), RecordedStopTimeout(before));
        File.Delete(gate);
        var result = await run.WaitForExitAsync(Hang);
        Assert.True(result is { ExitCode: 0 }, run.Output);
        // The guest never powers off: the backstop killed it, and saved its logs before the kill.
        Assert.Contains("Nspawn.Build: saved the logs of 'default' (nspawn-default-", result.Output);
        Assert.Contains("hang.service", File.ReadAllText(Path.Combine(_dir, "TestResults/nspawn/default/console.txt")));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task EphemeralMachine_StopAsync_honours_it()
    {
        var before = Records.Baseline();
        await using var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = _hang.Dir, LogicalName = "own", StopTimeout = TimeSpan.FromSeconds(3) });
        Assert.Equal(TimeSpan.FromSeconds(3), machine.StopTimeout);
        Assert.Equal(TimeSpan.FromSeconds(3), RecordedStopTimeout(before));
        // The guest never powers off: only a kill ends the stop.
        await Shell.EndsWithin(machine.StopAsync(), Hang);
        Assert.False(Directory.Exists($"/proc/{machine.LeaderPid}"), "the guest still runs");
        Leaks.AssertNone();
    }
}
