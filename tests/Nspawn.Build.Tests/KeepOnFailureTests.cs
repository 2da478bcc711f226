using System.Text.RegularExpressions;

namespace Nspawn.Build.Tests;

/// <summary>
/// NspawnKeepOnFailure=true: after failed tests the machines are left running, the build says how to get a
/// shell in each and how to stop them (NspawnStopKept); until then the reaper leaves them alone and a
/// rebuild of their image happens beside them.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class KeepOnFailureTests(PackageFixture package) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-kept-").FullName;
    private readonly string _image = "kept-" + Guid.NewGuid().ToString("N")[..8];

    public Task InitializeAsync() => package.RequireImageAsync();

    public async Task DisposeAsync()
    {
        // Whatever a failed assertion left running.
        await Consumer().RunAsync(["-t:NspawnStopKept"]);
        await Subvolumes.RemoveTreeAsync(Repo.ChrootsDir, Path.Combine(Repo.ChrootsDir, _image), CancellationToken.None);
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A consumer whose tests fail, with a machine on an image of its own (bookworm plus a marker of <paramref name="version"/>).</summary>
    private ConsumerProject Consumer(string version = "one", string name = "consumer")
    {
        File.WriteAllText(Path.Combine(_dir, version + ".sh"), $"echo {version} > /etc/kept-marker\n");
        return new ConsumerProject(package, _dir, Repo.ChrootsDir, vstest: """<Error Text="the tests failed" />""", name: name, items: $"""
            <NspawnImageDefinition Include="{_image}" BaseImage="bookworm" SetupScript="{version}.sh" />
            <NspawnMachine Include="default" Image="{_image}" />
            """);
    }

    /// <summary>Runs the shell command the build printed, with the given input: what a user types at a terminal.</summary>
    private static async Task<string> EnterAsync(string shell, string input)
    {
        var argv = shell.Split(' ');
        var result = await Cli.Wrap(argv[0]).WithArguments(argv.Skip(1)).WithStandardInputPipe(PipeSource.FromString(input))
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
        Assert.True(result.ExitCode == 0, result.StandardError);
        return result.StandardOutput;
    }

    // Taken before the test: a machine kept by an earlier run on this host is not this test's.
    private readonly HashSet<string> _before = Records.Baseline();

    private Machine KeptMachine() => Assert.Single(Records.Since(_before), r => r.Kept).Machine;

    [Fact]
    public async Task A_kept_machine_is_entered_by_the_printed_command_survives_reaper_and_rebuild_and_NspawnStopKept_stops_it()
    {
        var run = await Consumer().RunAsync(["-t:ContainerTest", "-p:NspawnKeepOnFailure=true"]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains($"error NSPAWN0050: The tests failed or could not run (see above). Their machines were kept running; their logs are in {_dir}/TestResults/nspawn. Kept machine 'default' (nspawn-default-", run.Output);
        var shell = Regex.Match(run.Output, @"Kept machine 'default' \(nspawn-default-[0-9a-f]{8}, image kept-[0-9a-f]{8}, leader PID \d+\) running for a look inside\. Get a shell in it: (?<shell>nsenter -t \d+ --all -- /bin/bash -l)  Stop the kept machines: dotnet build \S+consumer\.proj -t:NspawnStopKept");
        Assert.True(shell.Success, run.Output);
        var machine = KeptMachine();
        Assert.Equal($"one\n{_image}\n", await EnterAsync(shell.Groups["shell"].Value, "cat /etc/kept-marker; hostname\n"));
        Assert.True(File.Exists(Path.Combine(_dir, "TestResults/nspawn/default/journal.txt")));

        // Another build's reaper, and the image list.
        var reap = await Consumer(name: "other").RunAsync(["-t:NspawnReap"]);
        Assert.True(reap.ExitCode == 0, reap.ToString());
        Assert.DoesNotContain("Removed", reap.Output);
        Assert.True(ProcessInfo.IsRunning(machine.LeaderPid, machine.LeaderStartTime), "the reaper stopped the kept machine");
        var list = await Consumer(name: "other").RunAsync(["-t:NspawnListImages"]);
        Assert.Contains($"Kept machine 'default' ({machine.Name}", list.Output);
        Assert.Matches($@"Image '{_image}': .*, in use[ ;]", list.Output);

        // The image changes: it is rebuilt beside the kept machine, which keeps its own.
        var rebuild = await Consumer("two", name: "other").RunAsync(["-t:NspawnPrepareImages"]);
        Assert.True(rebuild.ExitCode == 0, rebuild.ToString());
        Assert.Equal("two\n", File.ReadAllText(Path.Combine(Repo.ChrootsDir, _image, "etc/kept-marker")));
        Assert.Equal("one\n", await EnterAsync(shell.Groups["shell"].Value, "cat /etc/kept-marker\n"));

        var stop = await Consumer(name: "other").RunAsync(["-t:NspawnStopKept"]);
        Assert.True(stop.ExitCode == 0, stop.ToString());
        Assert.Contains($"Stopped the kept machines 'default' ({machine.Name})", stop.Output);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task With_NspawnOnVSTest_the_end_of_the_build_keeps_the_machine_of_failed_tests()
    {
        // Plain VSTest fails: the targets never stop the machine, the end of the build keeps it and says so.
        var run = await Consumer().RunAsync(["-t:VSTest", "-p:NspawnOnVSTest=true", "-p:NspawnKeepOnFailure=true"]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("Nspawn.Build: saved the logs of 'default'", run.Output);
        var shell = Regex.Match(run.Output, @"Nspawn.Build: Kept machine 'default' .* Get a shell in it: (?<shell>nsenter -t \d+ --all -- /bin/bash -l)  ");
        Assert.True(shell.Success, run.Output);
        Assert.Equal("one\n", await EnterAsync(shell.Groups["shell"].Value, "cat /etc/kept-marker\n"));

        var stop = await Consumer().RunAsync(["-t:NspawnStopKept"]);
        Assert.True(stop.ExitCode == 0, stop.ToString());
        Assert.Contains("Stopped the kept machines 'default'", stop.Output);
        Leaks.AssertNone();
    }
}
