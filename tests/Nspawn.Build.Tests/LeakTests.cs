using System.Security;
using System.Xml.Linq;

namespace Nspawn.Build.Tests;

/// <summary>
/// Never leak a machine: these do the bad thing for real (SIGINT and SIGKILL to a running build, parallel
/// builds, plain dotnet test) and then check the process table, the chroots folder and the mount table.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class LeakTests(PackageFixture package) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-leaks-").FullName;
    private string Gate => Path.Combine(_dir, "gate");
    private string Running => Path.Combine(_dir, "tests-running");
    /// <summary>
    /// Far past what a build needs to end after a signal (its machines' stop timeout, 15 s by default, and the clean-up
    /// after): only turns a hang into a failure.
    /// </summary>
    private static readonly TimeSpan Hang = TimeSpan.FromMinutes(2);

    public async Task InitializeAsync()
    {
        await package.RequireImageAsync();
        File.WriteAllText(Gate, "");
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>A VSTest that says it runs, then waits until the test removes the gate file.</summary>
    private string WaitingTests => $"""
        <Touch Files="{SecurityElement.Escape(Running)}" AlwaysCreate="true" />
        <Exec Command="while [ -e '{SecurityElement.Escape(Gate)}' ]; do sleep 0.1; done" />
        """;

    private ConsumerProject Consumer(string vstest = "", string items = "", string name = "consumer") =>
        new(package, _dir, Repo.ChrootsDir, items, vstest, name: name);

    private static void AssertNoMountsUnder(string dir) =>
        Assert.DoesNotContain(MountTable.Read(), m => MountTable.IsUnder(m.MountPoint, dir) && m.MountPoint != dir);

    /// <summary>A private network with a way out: a bridge, links, addresses, routes, an nftables table and forwarding to leave behind.</summary>
    private static string[] Network(string network) =>
        network == "private" ? ["-p:NspawnNetwork=private", "-p:NspawnNetworkOutbound=true"] : [];

    private static string Forwarding => File.ReadAllText("/proc/sys/net/ipv4/ip_forward").Trim();

    [Theory]
    [InlineData("snapshot", "host")]
    [InlineData("overlay", "host")]
    [InlineData("snapshot", "private")]
    [InlineData("overlay", "private")]
    public async Task Ctrl_C_while_tests_run_stops_the_machines(string mode, string network)
    {
        var forwarding = Forwarding;
        // Overlay machines boot from a plain-folder copy of the image on the root file system.
        var plain = Path.Combine(_dir, "plain", "test_chroots");
        if (mode == "overlay")
        {
            Directory.CreateDirectory(plain);
            await Cli.Wrap("cp").WithArguments(["-a", "--", Repo.ImageDir, plain]).ExecuteBufferedAsync();
        }
        var consumer = new ConsumerProject(package, _dir, mode == "overlay" ? plain : Repo.ChrootsDir, vstest: WaitingTests);
        var run = BackgroundRun.Start(consumer.Command(["-t:ContainerTest", $"-p:NspawnEphemeralMode={mode}", .. Network(network)]));
        Assert.True(await Shell.WaitUntilAsync(() => File.Exists(Running), TimeSpan.FromMinutes(2)), run.Output);
        Assert.NotEmpty(Leaks.New());
        if (network == "private")
            Assert.Contains(Leaks.New(), l => l.StartsWith("nftables table ip nsb-"));
        run.Signal(ProcessInfo.SigInt);
        var result = await run.WaitForExitAsync(Hang);
        Assert.True(result is not null, "the build did not end after SIGINT:\n" + run.Output);
        Assert.NotEqual(0, result.ExitCode);
        Leaks.AssertNone();
        Assert.Equal(forwarding, Forwarding);
        if (mode == "overlay")
            Directory.Delete(Path.GetDirectoryName(plain)!, recursive: true);
    }

    [Fact]
    public async Task Ctrl_C_while_a_machine_boots_stops_it()
    {
        // An image whose boot waits a minute for a service, so that the build is caught booting.
        await using var slow = await TempImage.WithUnitAsync("slow", "slow.service",
            "[Unit]\nBefore=multi-user.target\n[Service]\nType=oneshot\nExecStart=/bin/sleep 60.17\n[Install]\nWantedBy=multi-user.target\n");

        var run = BackgroundRun.Start(Consumer(WaitingTests).Command(["-t:ContainerTest", $"-p:NspawnImage={slow.Name}", "-p:NspawnSuite=bookworm", "-p:NspawnBootTimeout=120"]));
        // Caught booting: its boot runs the slow service.
        Assert.True(await Shell.WaitUntilAsync(() => Processes.Named("/bin/sleep 60.17").Count > 0, TimeSpan.FromMinutes(1)), run.Output);
        run.Signal(ProcessInfo.SigInt);
        var result = await run.WaitForExitAsync(Hang);
        Assert.True(result is not null, "the build did not end after SIGINT:\n" + run.Output);
        Assert.Contains("error NSPAWN0040", result.Output);
        Assert.False(File.Exists(Running), "the tests ran");
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Ctrl_C_during_a_rebuild_leaves_no_half_image_and_the_old_one_usable()
    {
        // An image whose inputs change (the variant): its rebuild is interrupted while debootstrap downloads.
        await using var image = await TempImage.SnapshotAsync("int");
        var stamp = File.ReadAllText(Path.Combine(image.Dir, ImageBuilder.StampPath));
        var run = BackgroundRun.Start(Consumer().Command(["-t:NspawnPrepareImages", $"-p:NspawnImage={image.Name}", "-p:NspawnSuite=bookworm", "-p:NspawnVariant=buildd"]));
        Assert.True(await run.WaitForOutputAsync("downloading packages", TimeSpan.FromMinutes(2)), run.Output);
        run.Signal(ProcessInfo.SigInt);
        var result = await run.WaitForExitAsync(Hang);
        Assert.True(result is not null, "the build did not end after SIGINT:\n" + run.Output);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Empty(Directory.GetDirectories(Repo.ChrootsDir, $".#{image.Name}.*"));
        var left = (await Cli.Wrap("pgrep").WithArguments(["-a", "-f", image.Name]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync()).StandardOutput;
        Assert.True(left == "", "still running: " + left);
        AssertNoMountsUnder(Repo.ChrootsDir);
        Leaks.AssertNone();

        Assert.Equal(stamp, File.ReadAllText(Path.Combine(image.Dir, ImageBuilder.StampPath)));
        await using var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = image.Dir, LogicalName = "old" });
        Assert.True(await machine.IsSystemRunningAsync());
    }

    [Theory]
    [InlineData("host")]
    [InlineData("private")]
    public async Task A_killed_build_leaves_its_machine_to_the_next_runs_reaper(string network)
    {
        var forwarding = Forwarding;
        var run = BackgroundRun.Start(Consumer(WaitingTests, """<NspawnMachine Include="web" /><NspawnMachine Include="db" />""").Command(["-t:ContainerTest", .. Network(network)]));
        Assert.True(await Shell.WaitUntilAsync(() => File.Exists(Running), TimeSpan.FromMinutes(2)), run.Output);
        run.Signal(ProcessInfo.SigKill);
        Assert.NotNull(await run.WaitForExitAsync(Hang));
        File.Delete(Gate); // ends the orphaned test stand-in
        // Nothing could clean up at that moment: the machine (or at least its record and snapshot) is still there.
        Assert.NotEmpty(Leaks.New());
        if (network == "private")
        {
            Assert.Contains(Leaks.New(), l => l.StartsWith("interface nsb-"));
            Assert.Contains(Leaks.New(), l => l.StartsWith("nftables table ip nsb-"));
        }
        var reap = await Consumer(name: "next").RunAsync(["-t:NspawnReap"]);
        Assert.True(reap.ExitCode == 0, reap.ToString());
        Assert.Contains("Removed a leftover of an earlier run", reap.Output);
        if (network == "private")
            Assert.Matches(@"Removed a leftover of an earlier run: network nsb-[0-9a-f]{6} \(10\.213\.", reap.Output);
        Leaks.AssertNone();
        Assert.Equal(forwarding, Forwarding);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_build_that_fails_while_or_after_its_machine_boots_leaves_nothing(bool onceUp)
    {
        // ContainerTest boots the machines while the project builds: a compile error, at once or once they are up
        // (the build waits on a gate, which the test removes once the machine is recorded: up), must take them down.
        var before = Records.Baseline();
        var wait = onceUp ? $"""<Exec Command="while [ -e '{SecurityElement.Escape(Gate)}' ]; do sleep 0.1; done" />""" : "";
        var consumer = new ConsumerProject(package, _dir, Repo.ChrootsDir, vstest: WaitingTests, buildBody: wait + """<Error Text="a compile error" />""");
        var background = BackgroundRun.Start(consumer.Command(["-t:ContainerTest"]));
        if (onceUp)
        {
            Assert.True(await Shell.WaitUntilAsync(() => Records.Since(before).Count > 0, Hang), background.Output);
            File.Delete(Gate);
        }
        var run = await background.WaitForExitAsync(Hang);
        Assert.True(run is not null, "the build did not end:\n" + background.Output);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("a compile error", run.Output);
        Assert.False(File.Exists(Running), "the tests ran");
        Leaks.AssertNone();
    }

    /// <summary>The build's warm pool of two (machines recorded since <paramref name="before"/>), both up while the tests run.</summary>
    private static Task<bool> PoolIsUpAsync(HashSet<string> before) =>
        Shell.WaitUntilAsync(() => Records.Since(before).Count(r => r.Machine.Name.StartsWith("nspawn-pool-") && r.Machine.LeaderPid > 0) == 2, TimeSpan.FromMinutes(1));

    [Fact]
    public async Task Ctrl_C_while_tests_run_stops_the_pools_machines_too()
    {
        var before = Records.Baseline();
        var run = BackgroundRun.Start(Consumer(WaitingTests).Command(["-t:ContainerTest", "-p:NspawnPoolSize=2"]));
        Assert.True(await Shell.WaitUntilAsync(() => File.Exists(Running), TimeSpan.FromMinutes(2)), run.Output);
        Assert.True(await PoolIsUpAsync(before), run.Output);
        run.Signal(ProcessInfo.SigInt);
        var result = await run.WaitForExitAsync(Hang);
        Assert.True(result is not null, "the build did not end after SIGINT:\n" + run.Output);
        Assert.NotEqual(0, result.ExitCode);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_killed_builds_pool_machines_go_to_the_next_runs_reaper()
    {
        var before = Records.Baseline();
        var run = BackgroundRun.Start(Consumer(WaitingTests).Command(["-t:ContainerTest", "-p:NspawnPoolSize=2"]));
        Assert.True(await Shell.WaitUntilAsync(() => File.Exists(Running), TimeSpan.FromMinutes(2)), run.Output);
        Assert.True(await PoolIsUpAsync(before), run.Output);
        run.Signal(ProcessInfo.SigKill);
        Assert.NotNull(await run.WaitForExitAsync(Hang));
        File.Delete(Gate);
        Assert.Equal(3, Leaks.New().Count(l => l.StartsWith("process ")));
        var reap = await Consumer(name: "next").RunAsync(["-t:NspawnReap"]);
        Assert.True(reap.ExitCode == 0, reap.ToString());
        Assert.Equal(2, reap.Output.Split("Removed a leftover of an earlier run: machine nspawn-pool-").Length - 1);
        Assert.Contains("Removed a leftover of an earlier run: machine nspawn-default-", reap.Output);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task The_reaper_leaves_a_live_builds_machine_alone()
    {
        var baseline = Records.Baseline();
        var run = BackgroundRun.Start(Consumer(WaitingTests).Command(["-t:ContainerTest"]));
        Assert.True(await Shell.WaitUntilAsync(() => File.Exists(Running), TimeSpan.FromMinutes(2)), run.Output);
        var before = Assert.Single(Records.Since(baseline));
        var reap = await Consumer(name: "other").RunAsync(["-t:NspawnReap"]);
        Assert.True(reap.ExitCode == 0, reap.ToString());
        Assert.DoesNotContain("Removed", reap.Output);
        Assert.True(ProcessInfo.IsRunning(before.Machine.LeaderPid, before.Machine.LeaderStartTime));
        // NspawnUnmount from another build must not pull the file system from under this one either.
        var unmount = await Consumer(name: "other").RunAsync(["-t:NspawnUnmount"]);
        Assert.Contains("still in use", unmount.Output);
        Assert.True(BtrfsStore.IsBtrfs(Repo.ChrootsDir));
        File.Delete(Gate);
        var result = await run.WaitForExitAsync(TimeSpan.FromMinutes(1));
        Assert.True(result?.ExitCode == 0, result?.ToString());
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Two_builds_wanting_one_new_image_build_it_once()
    {
        var image = "par-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            string[] args = ["-t:NspawnPrepareImages", $"-p:NspawnImage={image}", "-p:NspawnSuite=bookworm"];
            var runs = await Task.WhenAll(Consumer(name: "a").RunAsync(args), Consumer(name: "b").RunAsync(args));
            Assert.All(runs, r => Assert.True(r.ExitCode == 0, r.ToString()));
            Assert.Single(runs, r => r.Output.Contains($"Image '{image}': debootstrap bookworm"));
            Assert.Single(runs, r => r.Output.Contains($"Image '{image}': waiting for another build") && r.Output.Contains($"Image '{image}' is up to date"));
            Assert.True(File.Exists(Path.Combine(Repo.ChrootsDir, image, ImageBuilder.StampPath)));
        }
        finally
        {
            await Subvolumes.RemoveTreeAsync(Repo.ChrootsDir, Path.Combine(Repo.ChrootsDir, image), CancellationToken.None);
        }
    }

    [Fact]
    public async Task Parallel_projects_and_several_machines_each_get_their_own()
    {
        string Seen(string name) => Path.Combine(_dir, "seen", name + ".runsettings");
        string Record(string name) => $"""<Copy SourceFiles="$(VSTestSetting)" DestinationFiles="{SecurityElement.Escape(Seen(name))}" />""";
        var a = Consumer(Record("a"), """<NspawnMachine Include="web" /><NspawnMachine Include="db" />""", name: "a");
        var b = Consumer(Record("b"), name: "b");
        var suite = Path.Combine(_dir, "suite.proj");
        File.WriteAllText(suite, $"""<Project><Target Name="ContainerTest"><MSBuild Projects="{a.Path};{b.Path}" Targets="ContainerTest" BuildInParallel="true" /></Target></Project>""");
        var run = await Shell.RunAsync(ConsumerProject.Dotnet, ["msbuild", suite, "-t:ContainerTest", "-m:2", "-nologo"], workingDir: _dir);
        Assert.True(run.ExitCode == 0, run.ToString());

        string Variable(string name, string variable) =>
            XDocument.Load(Seen(name)).Descendants("EnvironmentVariables").Elements(variable).Single().Value;
        Assert.NotEqual(Variable("a", "NSPAWN_MACHINE"), Variable("b", "NSPAWN_MACHINE"));
        Assert.StartsWith("nspawn-web-", Variable("a", "NSPAWN_MACHINE"));
        Assert.StartsWith("nspawn-default-", Variable("b", "NSPAWN_MACHINE"));
        Assert.Contains("Started 'web'", run.Output);
        Assert.Contains("'db' (nspawn-db-", run.Output);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_multi_targeting_project_gets_machines_for_each_framework()
    {
        var seen = Path.Combine(_dir, "seen");
        var packageDir = SecurityElement.Escape(package.PackageDir);
        var project = Path.Combine(_dir, "multi.proj");
        // The imports NuGet makes: buildMultiTargeting in the outer build, build in each inner one.
        File.WriteAllText(project, $"""
            <Project>
              <PropertyGroup>
                <TargetFrameworks>one;two</TargetFrameworks>
                <NspawnChrootsDir>{SecurityElement.Escape(Repo.ChrootsDir)}</NspawnChrootsDir>
                <IntermediateOutputPath>obj/multi/$(TargetFramework)/</IntermediateOutputPath>
              </PropertyGroup>
              <Import Project="{packageDir}/buildMultiTargeting/Nspawn.Build.targets" Condition="'$(TargetFramework)' == ''" />
              <Import Project="{packageDir}/build/Nspawn.Build.props" Condition="'$(TargetFramework)' != ''" />
              <Import Project="{packageDir}/build/Nspawn.Build.targets" Condition="'$(TargetFramework)' != ''" />
              <Target Name="Build" />
              <Target Name="VSTest"><Copy SourceFiles="$(VSTestSetting)" DestinationFiles="{SecurityElement.Escape(seen)}/$(TargetFramework).runsettings" /></Target>
            </Project>
            """);
        var run = await Shell.RunAsync(ConsumerProject.Dotnet, ["msbuild", project, "-t:ContainerTest", "-nologo"], workingDir: _dir);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.True(File.Exists(Path.Combine(seen, "one.runsettings")) && File.Exists(Path.Combine(seen, "two.runsettings")), run.Output);
        Assert.Equal(2, run.Output.Split("Stopped 'default'").Length - 1);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Plain_dotnet_test_with_NspawnOnTest_boots_and_stops_machines()
    {
        await package.FirstRunAsync();
        // A clean output folder: the machines boot before compilation, yet the sample's InvokeAsync tests need it in them.
        Directory.Delete(Path.Combine(Repo.Sample, "bin"), recursive: true);
        var run = await package.RunSampleAsync(["-p:NspawnOnTest=true"], command: "test");
        Assert.True(run.ExitCode == 0, run.ToString());
        run.AssertMatches($@"Passed!\s+- Failed:\s+0, Passed:\s+{PackageFixture.SampleTests}");
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Plain_dotnet_test_with_a_failing_test_still_stops_the_machines()
    {
        await package.FirstRunAsync();
        var settings = Path.Combine(_dir, "suite.runsettings");
        // Also a --settings of the suite's own: dotnet test makes it a global property, which ours must still win over.
        File.WriteAllText(settings, "<RunSettings><RunConfiguration><EnvironmentVariables><SAMPLE_FAIL>1</SAMPLE_FAIL></EnvironmentVariables></RunConfiguration></RunSettings>");
        var results = Path.Combine(_dir, "results");
        var run = await package.RunSampleAsync(["-p:NspawnOnVSTest=true", "--settings", settings, "--logger", "trx", "--results-directory", results], command: "test");
        Assert.NotEqual(0, run.ExitCode);
        run.AssertMatches($@"Failed!\s+- Failed:\s+1, Passed:\s+{PackageFixture.SampleTests - 1}");
        // The end of the build saw that the tests failed: it saved the machine's logs and listed them in the TRX.
        Assert.Contains($"Nspawn.Build: Saved the logs of 'server' (nspawn-server-", run.Output);
        Assert.Matches(@"sample\[\d+\]: checking SAMPLE_FAIL", File.ReadAllText(Path.Combine(results, "nspawn/server/journal.txt")));
        Assert.Contains("Welcome to Debian", File.ReadAllText(Path.Combine(results, "nspawn/server/console.txt")));
        Assert.Contains("<ResultFile path=\"nspawn/server/journal.txt\" />", File.ReadAllText(Assert.Single(Directory.GetFiles(results, "*.trx"))));
        Leaks.AssertNone();
    }
}
