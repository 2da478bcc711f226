using Nspawn.Build.Agent;
using System.Security;
using Xunit.Abstractions;

namespace Nspawn.Build.Tests;

/// <summary>
/// The systemd path, for real: a booted machine has systemd as PID 1, so inside one the package's own
/// scenario (ContainerTest on the sample) takes the path a workstation or CI runner takes: nspawn in a
/// transient unit (systemd-run), machines registered with machined, stopped with systemctl, and the API's
/// commands through 'systemd-run --machine'. The SDK, the package feed, the NuGet cache and the chroots
/// folder are bound in; the machine gets the few packages .NET and nspawn need from the Debian mirror.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class NestedSystemdTests(PackageFixture package, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _sample = Directory.CreateTempSubdirectory("nspawn-nested-sample-").FullName;
    private EphemeralMachine _host = null!;

    public async Task InitializeAsync()
    {
        await package.FirstRunAsync();
        foreach (var file in Directory.EnumerateFiles(Repo.Sample).Where(f => !f.EndsWith("nuget.config")))
            File.Copy(file, Path.Combine(_sample, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(_sample, "nuget.config"), """
            <configuration><packageSources><clear /><add key="local" value="/feed" /></packageSources></configuration>
            """);
        var dotnetRoot = Path.GetDirectoryName(File.ResolveLinkTarget(ConsumerProject.Dotnet, returnFinalTarget: true)?.FullName ?? ConsumerProject.Dotnet)!;
        _host = await EphemeralMachine.StartAsync(new StartOptions
        {
            ImageDir = Repo.ImageDir,
            LogicalName = "systemd-host",
            // A host for machines must be host root (btrfs snapshots, mounts, links): the unsafe opt-out, for a machine of our own tests.
            PrivateUsers = false,
            NspawnArguments =
            [
                $"--bind-ro={dotnetRoot}:/opt/dotnet",
                $"--bind-ro={Path.Combine(Repo.Root, "artifacts/feed")}:/feed",
                $"--bind={package.NuGetCache}:/nuget",
                $"--bind={Repo.ChrootsDir}:/chroots",
                $"--bind={_sample}:/sample",
                $"--bind-ro={package.PackageDir}:/package",
                // The sample's private network: the bridge, the machines' links and their addresses are made from inside.
                "--capability=CAP_NET_ADMIN",
            ],
        });
        var apt = new ExecOptions { Timeout = TimeSpan.FromMinutes(5), OnOutput = output.WriteLine, Environment = new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" } };
        await _host.ExecCheckedAsync(["apt-get", "update", "-qq"], apt);
        await _host.ExecCheckedAsync(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "systemd-container", "btrfs-progs", "iproute2", "libicu72", "libssl3", "ca-certificates"], apt);
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        Directory.Delete(_sample, recursive: true);
        Leaks.AssertNone();
    }

    private async Task<ExecResult> ContainerTestInsideAsync(params (string Name, string Value)[] environment)
    {
        var variables = new Dictionary<string, string>
        {
            ["NUGET_PACKAGES"] = "/nuget", ["HOME"] = "/root", ["DOTNET_CLI_HOME"] = "/root", ["DOTNET_NOLOGO"] = "1",
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["NUGET_CERT_REVOCATION_MODE"] = "offline",
            ["PATH"] = "/opt/dotnet:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        };
        foreach (var (name, value) in environment)
            variables[name] = value;
        var run = await _host.ExecAsync(["/opt/dotnet/dotnet", "build", "/sample", "-t:ContainerTest", $"-p:NspawnBuildVersion={package.Version}", "-p:NspawnChrootsDir=/chroots"],
            new ExecOptions { Timeout = TimeSpan.FromMinutes(5), Environment = variables });
        output.WriteLine(run.StandardOutput + run.StandardError);
        return run;
    }

    /// <summary>No machine, and no unit of one, is left inside the systemd host.</summary>
    private async Task AssertNothingLeftInsideAsync()
    {
        Assert.Equal("", (await _host.ExecCheckedAsync("machinectl", "list", "--no-legend")).StandardOutput.Trim());
        var units = (await _host.ExecCheckedAsync("systemctl", "list-units", "--all", "--no-legend", "--plain", "nspawn-*")).StandardOutput;
        // The systemd host's own agent (it is a machine of ours too) is no machine's unit.
        Assert.DoesNotContain(units.Split('\n', StringSplitOptions.RemoveEmptyEntries), u => !u.StartsWith("nspawn-exec-") && !u.StartsWith(AgentSetup.UnitName));
    }

    /// <summary>Ctrl+C on this path: SIGINT to a build whose tests run; its machines go with it.</summary>
    private async Task CtrlCStopsTheMachinesAsync()
    {
        // A consumer whose tests wait on a gate file, built in the background in a unit of its own.
        File.WriteAllText(Path.Combine(_sample, "gate"), "");
        File.WriteAllText(Path.Combine(_sample, "waiting.proj"), """
            <Project>
              <Import Project="/package/build/Nspawn.Build.props" />
              <PropertyGroup><NspawnChrootsDir>/chroots</NspawnChrootsDir><IntermediateOutputPath>obj/waiting/</IntermediateOutputPath></PropertyGroup>
              <Import Project="/package/build/Nspawn.Build.targets" />
              <Target Name="Build" />
              <Target Name="VSTest">
                <Touch Files="/sample/tests-running" AlwaysCreate="true" />
                <Exec Command="while [ -e /sample/gate ]; do sleep 0.1; done" />
              </Target>
            </Project>
            """);
        await _host.ExecCheckedAsync(["systemd-run", "--unit=containertest-bg", "--collect", "--setenv=HOME=/root", "--setenv=DOTNET_CLI_HOME=/root",
            "--setenv=DOTNET_NOLOGO=1", "--setenv=DOTNET_CLI_TELEMETRY_OPTOUT=1", "/opt/dotnet/dotnet", "msbuild", "/sample/waiting.proj", "-t:ContainerTest"]);
        Assert.True(await Shell.WaitUntilAsync(() => File.Exists(Path.Combine(_sample, "tests-running")), TimeSpan.FromMinutes(2)), "the tests did not start");
        Assert.NotEqual("", (await _host.ExecCheckedAsync("machinectl", "list", "--no-legend")).StandardOutput.Trim());

        await _host.ExecCheckedAsync("systemctl", "kill", "--signal=SIGINT", "--kill-who=main", "containertest-bg.service");
        // The gate is still there: only the interrupt can end the build. The bound is far past the machines' stop timeout (15 s): it only turns a hang into a failure.
        Assert.True(await Shell.WaitUntilAsync(async () => (await _host.ExecAsync("systemctl", "is-active", "--quiet", "containertest-bg.service")).ExitCode != 0, TimeSpan.FromMinutes(2)),
            "the build did not end after SIGINT");
        Assert.True(File.Exists(Path.Combine(_sample, "gate")));
        await AssertNothingLeftInsideAsync();
    }

    [Fact]
    public async Task ContainerTest_inside_a_systemd_machine_uses_systemd_run_and_machined()
    {
        Assert.Equal("systemd", (await _host.ExecCheckedAsync("cat", "/proc/1/comm")).StandardOutput.Trim());
        var run = await ContainerTestInsideAsync();
        Assert.True(run.ExitCode == 0, run.StandardOutput + run.StandardError);
        Assert.Matches($@"Passed!\s+- Failed:\s+0, Passed:\s+{PackageFixture.SampleTests}", run.StandardOutput);
        // The systemd-run path: nspawn ran in a transient unit (registered with machined: the API's commands went through it).
        Assert.Matches(@"'server' \(nspawn-server-[0-9a-f]{8}, unit nspawn-server-[0-9a-f]{8}\.service, image bookworm, address 10\.", run.StandardOutput);
        await AssertNothingLeftInsideAsync();

        // A failing test on this path: the build fails and the machines are stopped all the same.
        var failing = await ContainerTestInsideAsync(("SAMPLE_FAIL", "1"));
        Assert.NotEqual(0, failing.ExitCode);
        Assert.Matches($@"Failed!\s+- Failed:\s+1, Passed:\s+{PackageFixture.SampleTests - 1}", failing.StandardOutput);
        Assert.Contains("Stopped 'server'", failing.StandardOutput);
        // Its logs: the guest's journal read through machined, the console from the unit's journal.
        var logs = Path.Combine(_sample, "TestResults/nspawn/server");
        Assert.Matches(@"sample\[\d+\]: checking SAMPLE_FAIL", File.ReadAllText(Path.Combine(logs, "journal.txt")));
        Assert.Contains("Welcome to Debian", File.ReadAllText(Path.Combine(logs, "console.txt")));
        await AssertNothingLeftInsideAsync();

        // One machine (with apt run in it) serves the three scenarios: Ctrl+C last.
        await CtrlCStopsTheMachinesAsync();
    }
}
