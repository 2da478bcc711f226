using System.Security;
using System.Text.Json;
using Nspawn.Build.Agent;

namespace Nspawn.Build.Tests;

/// <summary>
/// A real sudo user runs 'sudo dotnet build -t:NspawnUp', then their own 'dotnet test' without sudo (tests/Samples/Up),
/// twice in VSTest mode and once in MTP mode, against the same machines; then NspawnDown. Around it: another project's up machines are left alone, the
/// reaper leaves up machines alone, NspawnUp again replaces them, NspawnDown cleans up after a SIGKILL of the machines,
/// and only that user reaches an up machine's agent.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class UpTests(PackageFixture package) : IAsyncLifetime
{
    private const string User = "nspawn-up-user";
    private const string Nobody = "nobody";
    private static string Home => $"/home/{User}";
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(2);

    public async Task InitializeAsync()
    {
        await package.RequireImageAsync();
        await Cli.Wrap("userdel").WithArguments(["-r", User]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
        await Cli.Wrap("useradd").WithArguments(["--create-home", "--shell", "/bin/sh", User]).ExecuteBufferedAsync();
        File.WriteAllText($"/etc/sudoers.d/{User}", $"{User} ALL=(ALL) NOPASSWD: ALL\n");
        File.SetUnixFileMode($"/etc/sudoers.d/{User}", UnixFileMode.UserRead | UnixFileMode.GroupRead);
    }

    public async Task DisposeAsync()
    {
        // Whatever a failed assertion left up.
        await Shell.RunAsync("dotnet", ["build", Path.Combine(Repo.Samples, "Up"), "-t:NspawnDownAll", $"-p:NspawnBuildVersion={package.Version}"],
            new Dictionary<string, string?> { ["NUGET_PACKAGES"] = package.NuGetCache });
        File.Delete($"/etc/sudoers.d/{User}");
        await Cli.Wrap("userdel").WithArguments(["-r", User]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
    }

    /// <summary>The user's copy of the Up sample, with a feed of their own holding the packed package.</summary>
    private async Task<string> UserCopyAsync(string name)
    {
        var feed = Path.Combine(Home, "feed");
        Directory.CreateDirectory(feed);
        File.Copy(package.Nupkg, Path.Combine(feed, Path.GetFileName(package.Nupkg)), overwrite: true);
        var copy = Path.Combine(Home, name);
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Repo.Samples, "Up")).Append(Path.Combine(Repo.Samples, "Directory.Build.props")))
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(copy, "nuget.config"), $"""
            <configuration><packageSources><clear />
              <add key="local" value="{SecurityElement.Escape(feed)}" />
              <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
            </packageSources></configuration>
            """);
        await Cli.Wrap("chown").WithArguments(["-R", $"{User}:{User}", Home]).ExecuteAsync();
        return copy;
    }

    private Task<RunResult> SudoBuildAsync(string dir, string target, params string[] more) =>
        Shell.RunAsync("runuser", ["-u", User, "--", "sudo", "env", $"NUGET_PACKAGES={package.NuGetCache}", "dotnet", "build", $"-t:{target}",
            $"-p:NspawnBuildVersion={package.Version}", $"-p:NspawnChrootsDir={Repo.ChrootsDir}", .. more], workingDir: dir);

    /// <summary>The user's own dotnet test: no sudo, their own NuGet cache and home.</summary>
    private static Task<RunResult> UserTestAsync(string dir, string seen, string version, params string[] more) =>
        Shell.RunAsync("runuser", ["-u", User, "--", "env", $"HOME={Home}", $"DOTNET_CLI_HOME={Home}", "DOTNET_NOLOGO=1", $"UP_SEEN={seen}",
            "dotnet", "test", $"-p:NspawnBuildVersion={version}", .. more], workingDir: dir);

    private static string ProjectFile(string dir) => Path.Combine(dir, "Up.Tests.csproj");

    private static IReadOnlyList<MachineRecord> UpOf(string dir) => UpMachines.Of(ProjectFile(dir));

    private static bool Running(MachineRecord r) => ProcessInfo.IsRunning(r.Machine.NspawnPid, r.Machine.NspawnStartTime);

    [Fact]
    public async Task A_user_tests_without_sudo_against_up_machines_then_takes_them_down()
    {
        var project = await UserCopyAsync("up");
        var other = await UserCopyAsync("other");

        var up = await SudoBuildAsync(project, "NspawnUp");
        Assert.True(up.ExitCode == 0, up.ToString());
        Assert.Contains("Up for tests run without sudo", up.Output);
        var first = UpOf(project);
        Assert.NotEmpty(first);
        Assert.All(first, r => Assert.True(Running(r)));

        // Twice, as the user: both runs pass and meet the same machines.
        var seen = Path.Combine(Home, "seen.txt");
        for (var run = 0; run < 2; run++)
        {
            var test = await UserTestAsync(project, seen, package.Version);
            Assert.True(test.ExitCode == 0, test.ToString());
            Assert.Matches(@"Passed!\s+- Failed:\s+0, Passed:\s+3", test.Output);
        }
        // And in MTP mode (global.json), the test application as the user: its runtimeconfig.json names the up file too.
        File.Copy(Path.Combine(Repo.Samples, "Mtp/global.json"), Path.Combine(project, "global.json"));
        await Cli.Wrap("chown").WithArguments([$"{User}:{User}", Path.Combine(project, "global.json")]).ExecuteAsync();
        var mtp = await UserTestAsync(project, seen, package.Version, "-p:UpMtp=true");
        Assert.True(mtp.ExitCode == 0, mtp.ToString());
        Assert.Matches(@"succeeded:\s+3\s", mtp.Output);
        Assert.Equal(Enumerable.Repeat(first[0].Machine.Name, 3), File.ReadAllLines(seen));

        // Another project's up machines, on a private network of their own.
        var otherUp = await SudoBuildAsync(other, "NspawnUp", "-p:NspawnNetwork=private");
        Assert.True(otherUp.ExitCode == 0, otherUp.ToString());
        var others = UpOf(other);
        Assert.NotEmpty(others);

        // The reaper (every build runs it) leaves up machines alone.
        var reap = await SudoBuildAsync(project, "NspawnReap");
        Assert.True(reap.ExitCode == 0, reap.ToString());
        Assert.All(UpOf(project).Concat(UpOf(other)), r => Assert.True(Running(r), $"{r.Machine.Name} was stopped by the reaper"));

        // NspawnUp again: fresh machines replace the earlier ones.
        var again = await SudoBuildAsync(project, "NspawnUp");
        Assert.True(again.ExitCode == 0, again.ToString());
        var second = UpOf(project);
        Assert.NotEmpty(second);
        Assert.Empty(second.Select(r => r.Machine.Name).Intersect(first.Select(r => r.Machine.Name)));
        Assert.All(first, r => Assert.False(Running(r), $"{r.Machine.Name} was not replaced"));

        // Down: the project's machines and file go; the other project's stay.
        var down = await SudoBuildAsync(project, "NspawnDown");
        Assert.True(down.ExitCode == 0, down.ToString());
        Assert.Empty(UpOf(project));
        Assert.False(File.Exists(Path.Combine(project, "obj/nspawn-up.json")));
        Assert.All(UpOf(other), r => Assert.True(Running(r), $"{r.Machine.Name} of the other project was stopped"));

        // Without up machines the user's run fails, and says how to get them.
        var after = await UserTestAsync(project, seen, package.Version, "-p:UpMtp=true");
        Assert.NotEqual(0, after.ExitCode);
        Assert.Contains("sudo dotnet build -t:NspawnUp", after.Output);

        // SIGKILL of everything the other project's machines run, then NspawnDown still cleans up.
        foreach (var r in UpOf(other))
            await Cli.Wrap("kill").WithArguments(["-KILL", r.Machine.NspawnPid.ToString(), r.Machine.LeaderPid.ToString()]).WithValidation(CommandResultValidation.None).ExecuteAsync();
        Assert.True(await Shell.WaitUntilAsync(() => UpOf(other).All(r => !Running(r)), Bound), "the killed machines still run");
        var otherDown = await SudoBuildAsync(other, "NspawnDown");
        Assert.True(otherDown.ExitCode == 0, otherDown.ToString());
        Assert.Empty(UpOf(other));
        Leaks.AssertNone();

        // Nothing root's left in the user's tree.
        var rootOwned = await Cli.Wrap("find").WithArguments([Home, "-uid", "0"]).ExecuteBufferedAsync();
        Assert.True(rootOwned.StandardOutput.Trim() == "", "root-owned files in the user's tree:\n" + rootOwned.StandardOutput);
    }

    [Fact]
    public async Task Every_up_machine_on_the_host_is_listed_and_stopped_at_once()
    {
        var one = await UserCopyAsync("list-one");
        var two = await UserCopyAsync("list-two");
        foreach (var dir in new[] { one, two })
        {
            var up = await SudoBuildAsync(dir, "NspawnUp");
            Assert.True(up.ExitCode == 0, up.ToString());
        }
        var machines = UpOf(one).Concat(UpOf(two)).ToList();
        Assert.Equal(2, machines.Count);
        var list = await SudoBuildAsync(one, "NspawnListUp");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.All(machines, r => Assert.Contains($"{r.UpProject}: '{r.Machine.LogicalName}' ({r.Machine.Name},", list.Output));
        var all = await SudoBuildAsync(one, "NspawnDownAll");
        Assert.True(all.ExitCode == 0, all.ToString());
        Assert.Empty(UpMachines.All());
        Assert.False(File.Exists(Path.Combine(two, "obj/nspawn-up.json")));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Only_the_sudo_user_reaches_an_up_machines_agent()
    {
        var project = await UserCopyAsync("access");
        var up = await SudoBuildAsync(project, "NspawnUp");
        Assert.True(up.ExitCode == 0, up.ToString());
        try
        {
            var machine = Assert.Single(UpOf(project)).Machine;
            var socketDir = AgentSetup.SocketDirOf(machine.Name);
            var user = await IdsAsync(User);
            var nobody = await IdsAsync(Nobody);
            // A real connect as each, on a thread of its own (the file system identity is per thread).
            Assert.Null(await ConnectAsAsync(user, socketDir));
            var refused = await ConnectAsAsync(nobody, socketDir);
            Assert.True(refused is UnauthorizedAccessException or IOException or System.Net.Sockets.SocketException, refused?.ToString() ?? "nobody reached the agent");
        }
        finally
        {
            var down = await SudoBuildAsync(project, "NspawnDown");
            Assert.True(down.ExitCode == 0, down.ToString());
        }
        Leaks.AssertNone();
    }

    [Fact]
    public async Task An_up_machine_holds_nothing_the_build_was_given()
    {
        var project = Path.Combine(Repo.Samples, "Up");
        var held = Path.Combine(Path.GetTempPath(), $"nspawn-held-{Guid.NewGuid():N}");
        try
        {
            // Root's own build, without sudo (which closes them): descriptors open across exec, as a CI step's pipe or a caller's
            // lock are. A machine that outlived the build and held them would keep the pipe open or the lock taken.
            var up = await Shell.RunAsync("bash", ["-c", "exec 7>>\"$0\" 12>>\"$0\"; exec \"$@\"", held, "dotnet", "build", "-t:NspawnUp",
                $"-p:NspawnBuildVersion={package.Version}", $"-p:NspawnChrootsDir={Repo.ChrootsDir}"],
                new Dictionary<string, string?> { ["NUGET_PACKAGES"] = package.NuGetCache }, project);
            Assert.True(up.ExitCode == 0, up.ToString());
            var machines = UpOf(project);
            Assert.NotEmpty(machines);
            foreach (var r in machines)
            {
                Assert.True(Running(r));
                var open = Directory.EnumerateFileSystemEntries($"/proc/{r.Machine.NspawnPid}/fd").Select(LinkOrNull).ToList();
                Assert.NotEmpty(open);
                Assert.DoesNotContain(held, open);
            }
            var down = await Shell.RunAsync("dotnet", ["build", project, "-t:NspawnDown", $"-p:NspawnBuildVersion={package.Version}"],
                new Dictionary<string, string?> { ["NUGET_PACKAGES"] = package.NuGetCache });
            Assert.True(down.ExitCode == 0, down.ToString());
        }
        finally
        {
            File.Delete(held);
        }
        Leaks.AssertNone();
    }

    /// <summary>Where a descriptor of /proc/PID/fd leads; null once it is closed.</summary>
    private static string? LinkOrNull(string fd)
    {
        try
        {
            return new FileInfo(fd).LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
    }

    [Fact]
    public async Task NspawnUp_refuses_machines_without_a_user_namespace()
    {
        var project = await UserCopyAsync("unsafe");
        var up = await SudoBuildAsync(project, "NspawnUp", "-p:NspawnPrivateUsers=false");
        Assert.NotEqual(0, up.ExitCode);
        Assert.Contains("error NSPAWN0037", up.Output);
        Assert.Empty(UpOf(project));
        Leaks.AssertNone();
    }

    private static async Task<(uint Uid, uint Gid)> IdsAsync(string user)
    {
        var uid = (await Cli.Wrap("id").WithArguments(["-u", user]).ExecuteBufferedAsync()).StandardOutput.Trim();
        var gid = (await Cli.Wrap("id").WithArguments(["-g", user]).ExecuteBufferedAsync()).StandardOutput.Trim();
        return (uint.Parse(uid), uint.Parse(gid));
    }

    /// <summary>Pings the agent with the file system identity of <paramref name="ids"/> (no root's rights on files); the failure, or null.</summary>
    private static Task<Exception?> ConnectAsAsync((uint Uid, uint Gid) ids, string socketDir)
    {
        var done = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using (FsIdentity.As(ids.Uid, ids.Gid))
                using (var cancel = new CancellationTokenSource(Bound))
                    AgentConnection.ConnectAsync(socketDir, cancel.Token).GetAwaiter().GetResult().DisposeAsync().AsTask().GetAwaiter().GetResult();
                done.SetResult(null);
            }
            catch (Exception e)
            {
                done.SetResult(e);
            }
        });
        thread.Start();
        return done.Task;
    }
}
