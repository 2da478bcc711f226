using System.Security;
using System.Text.RegularExpressions;

namespace Nspawn.Build.Tests;

/// <summary>
/// Private networks and binds for real, beyond the sample (which runs two machines on one): a way out through
/// the host, two builds at once, a machine with no network, a test's own machine with a bind. Traffic goes only
/// to the machines' own addresses, and apt in a machine only to the Debian mirror.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed partial class NetworkTests(PackageFixture package) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-network-").FullName;
    private string Gate => Path.Combine(_dir, "gate");
    private string Running => Path.Combine(_dir, "tests-running");
    private string Seen => Path.Combine(_dir, "seen.runsettings");

    public async Task InitializeAsync()
    {
        await package.RequireImageAsync();
        File.WriteAllText(Gate, "");
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        Leaks.AssertNone();
        return Task.CompletedTask;
    }

    [GeneratedRegex(@"Made the private network (nsb-[0-9a-f]{6}) \((10\.213\.\d+\.0/24)")]
    private static partial Regex MadeNetwork();

    private static string Forwarding => File.ReadAllText("/proc/sys/net/ipv4/ip_forward").Trim();

    /// <summary>A VSTest that keeps its run settings (which name the machines file), says it runs, and waits for the gate.</summary>
    private string WaitingTests => $"""
        <Copy SourceFiles="$(VSTestSetting)" DestinationFiles="{SecurityElement.Escape(Seen)}" />
        <Touch Files="{SecurityElement.Escape(Running)}" AlwaysCreate="true" />
        <Exec Command="while [ -e '{SecurityElement.Escape(Gate)}' ]; do sleep 0.1; done" />
        """;

    /// <summary>The machines of a build that waits in its tests, as the tests would see them.</summary>
    private IReadOnlyList<EphemeralMachine> MachinesOfTheWaitingBuild()
    {
        var file = System.Xml.Linq.XDocument.Load(Seen).Descendants("NSPAWN_MACHINES_FILE").Single().Value;
        using (new EnvironmentScope("NSPAWN_MACHINES_FILE", file))
            return EphemeralMachine.AllFromEnvironment();
    }

    [Fact]
    public async Task Outbound_lets_private_machines_reach_the_mirror_and_its_rules_go_at_the_end()
    {
        var before = Forwarding;
        var consumer = new ConsumerProject(package, _dir, Repo.ChrootsDir, vstest: WaitingTests);
        var run = BackgroundRun.Start(consumer.Command(["-t:ContainerTest", "-p:NspawnNetwork=private", "-p:NspawnNetworkOutbound=true"]));
        Assert.True(await Shell.WaitUntilAsync(() => File.Exists(Running), TimeSpan.FromMinutes(2)), run.Output);
        // The build's line may reach us after the test has begun: waited for.
        Assert.True(await Shell.WaitUntilAsync(() => MadeNetwork().IsMatch(run.Output), TimeSpan.FromMinutes(1)), run.Output);
        var bridge = MadeNetwork().Match(run.Output).Groups[1].Value;
        Assert.Contains($"table ip {bridge}", Leaks.NftTables());
        Assert.Equal("1", Forwarding);

        var machine = Assert.Single(MachinesOfTheWaitingBuild());
        // Retried: the mirror is the network's, and one lost request is not what this test is about.
        var apt = await machine.ExecAsync(["apt-get", "update", "-o", "Acquire::Retries=3"], new ExecOptions { Timeout = TimeSpan.FromMinutes(3) });
        Assert.True(apt.ExitCode == 0, apt.StandardOutput + apt.StandardError);

        File.Delete(Gate);
        var result = await run.WaitForExitAsync(TimeSpan.FromMinutes(1));
        Assert.True(result?.ExitCode == 0, run.Output);
        Assert.DoesNotContain(Leaks.NftTables(), t => t.Contains(bridge));
        Assert.Equal(before, Forwarding);
    }

    [Fact]
    public async Task Without_outbound_a_private_machine_cannot_reach_the_mirror()
    {
        var consumer = new ConsumerProject(package, _dir, Repo.ChrootsDir, vstest: WaitingTests);
        var run = BackgroundRun.Start(consumer.Command(["-t:ContainerTest", "-p:NspawnNetwork=private"]));
        Assert.True(await Shell.WaitUntilAsync(() => File.Exists(Running), TimeSpan.FromMinutes(2)), run.Output);
        var machine = Assert.Single(MachinesOfTheWaitingBuild());
        var apt = await machine.ExecAsync(["apt-get", "update", "-o", "Acquire::Retries=0"], new ExecOptions { Timeout = TimeSpan.FromMinutes(3) });
        Assert.Contains("W: Failed to fetch", apt.StandardError);
        File.Delete(Gate);
        Assert.True((await run.WaitForExitAsync(TimeSpan.FromMinutes(1)))?.ExitCode == 0, run.Output);
    }

    [Fact]
    public async Task Two_builds_at_once_get_two_networks()
    {
        ConsumerProject Consumer(string name) => new(package, _dir, Repo.ChrootsDir, """<NspawnMachine Include="web" /><NspawnMachine Include="db" />""", name: name);
        string[] args = ["-t:ContainerTest", "-p:NspawnNetwork=private"];
        var runs = await Task.WhenAll(Consumer("a").RunAsync(args), Consumer("b").RunAsync(args));
        Assert.All(runs, r => Assert.True(r.ExitCode == 0, r.ToString()));
        var networks = runs.Select(r => MadeNetwork().Match(r.Output)).ToList();
        Assert.All(networks, m => Assert.True(m.Success));
        Assert.NotEqual(networks[0].Groups[1].Value, networks[1].Groups[1].Value);
        Assert.NotEqual(networks[0].Groups[2].Value, networks[1].Groups[2].Value);
    }

    [Fact]
    public async Task A_machine_without_network_has_loopback_only()
    {
        await using var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = Repo.ImageDir, LogicalName = "isolated", Network = NetworkMode.None });
        Assert.Null(machine.Address);
        Assert.Equal("lo", (await machine.ExecCheckedAsync("ls", "/sys/class/net")).StandardOutput.Trim());
    }

    [Fact]
    public async Task A_tests_own_machine_gets_its_binds_read_only_unless_asked()
    {
        var ro = Directory.CreateDirectory(Path.Combine(_dir, "ro")).FullName;
        var rw = Directory.CreateDirectory(Path.Combine(_dir, "rw:with colon")).FullName;
        File.WriteAllText(Path.Combine(ro, "input.txt"), "from the host\n");
        await using (var machine = await EphemeralMachine.StartAsync(new StartOptions
        {
            ImageDir = Repo.ImageDir, LogicalName = "binds",
            Binds = [new Bind(ro, "/srv/in"), new Bind(rw, "/srv/out", ReadOnly: false)],
        }))
        {
            Assert.Equal("from the host\n", await machine.ReadAllTextAsync("/srv/in/input.txt"));
            Assert.NotEqual(0, (await machine.ExecAsync("touch", "/srv/in/x")).ExitCode);
            await machine.ExecCheckedAsync("sh", "-c", "echo out > /srv/out/result.txt");
        }
        Assert.Equal("out\n", File.ReadAllText(Path.Combine(rw, "result.txt")));
        Assert.False(File.Exists(Path.Combine(ro, "x")));
    }

    [Fact]
    public async Task Private_machines_need_a_private_network_to_join()
    {
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            EphemeralMachine.StartAsync(new StartOptions { ImageDir = Repo.ImageDir, Network = NetworkMode.Private }));
        Assert.Contains("no private network to join", e.Message);
    }
}
