using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Nspawn.Build.Tests;

/// <summary>
/// NspawnStopTimeout on every stop path, with a guest that ignores power-off (a unit whose stop never ends):
/// each stop kills it after 3 s, where the default would wait 15 s.
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

    /// <summary>The duration of a stop that had to kill, as the build reports it.</summary>
    private static TimeSpan KilledAfter(string output, string logical)
    {
        var m = Regex.Match(output, $@"'{logical}' \(nspawn-{logical}-[0-9a-f]+\) in (?<s>[0-9.]+) s, killed: it did not power off within its stop timeout of 3 s");
        Assert.True(m.Success, "no stop report with a kill after 3 s:\n" + output);
        return TimeSpan.FromSeconds(double.Parse(m.Groups["s"].Value, CultureInfo.InvariantCulture));
    }

    private static void AssertHonoured(TimeSpan took) =>
        Assert.True(took >= TimeSpan.FromSeconds(2.9) && took < Defaults.StopTimeout, $"the stop took {took.TotalSeconds:0.0} s: not the 3 s asked for");

    [Fact]
    public async Task NspawnStopMachines_kills_a_guest_that_ignores_power_off_after_the_timeout()
    {
        var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir).RunAsync(["-t:ContainerTest", .. Properties]);
        Assert.True(run.ExitCode == 0, run.ToString());
        AssertHonoured(KilledAfter(run.Output, "default"));
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
        AssertHonoured(KilledAfter(run.Output, "hang"));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task The_build_end_backstop_honours_it()
    {
        // NspawnStartMachines alone: nothing stops the machine but the backstop when the build ends.
        var run = BackgroundRun.Start(new ConsumerProject(package, _dir, Repo.ChrootsDir).Command(["-t:NspawnStartMachines", .. Properties]));
        Assert.True(await run.WaitForOutputAsync("Started 'default'", TimeSpan.FromMinutes(2)), run.Output);
        var sw = Stopwatch.StartNew();
        var result = await run.WaitForExitAsync(TimeSpan.FromMinutes(1));
        Assert.True(result is { ExitCode: 0 }, run.Output);
        AssertHonoured(sw.Elapsed);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task EphemeralMachine_StopAsync_honours_it()
    {
        await using var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = _hang.Dir, LogicalName = "own", StopTimeout = TimeSpan.FromSeconds(3) });
        Assert.Equal(TimeSpan.FromSeconds(3), machine.StopTimeout);
        var sw = Stopwatch.StartNew();
        await machine.StopAsync();
        AssertHonoured(sw.Elapsed);
        Leaks.AssertNone();
    }
}
