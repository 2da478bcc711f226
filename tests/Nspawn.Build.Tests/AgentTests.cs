using System.Net.Sockets;
using Nspawn.Build.Agent;

namespace Nspawn.Build.Tests;

/// <summary>The agent in every machine: commands, files and InvokeAsync through it, and the confined path without it.</summary>
[Collection(MachinesCollection.Name)]
public sealed class AgentTests(PackageFixture package) : IAsyncLifetime
{
    private EphemeralMachine _machine = null!;

    public async Task InitializeAsync()
    {
        await package.FirstRunAsync();
        _machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = Repo.ImageDir, LogicalName = "agent" });
    }

    public async Task DisposeAsync()
    {
        await _machine.DisposeAsync();
        Leaks.AssertNone();
    }

    [Fact]
    public async Task The_agent_runs_as_a_confined_service_of_the_guest_and_serves_commands()
    {
        Assert.True(_machine.Agent is not null, _machine.AgentProblem);
        Assert.Equal("active", (await _machine.ExecAsync("systemctl", "is-active", AgentSetup.UnitName)).StandardOutput.Trim());
        // A command runs in a cgroup of its own below the agent's unit.
        var cgroup = (await _machine.ExecCheckedAsync("cat", "/proc/self/cgroup")).StandardOutput;
        Assert.Contains($"/system.slice/{AgentSetup.UnitName}/cmd-", cgroup);
        // Its socket folder is the guest root's only (an unprivileged host UID), on the host.
        var dir = FileStatus.Of(AgentSetup.SocketDirOf(_machine.Name))!;
        var shift = MachineRegistry.List().Single(r => r.Machine.Name == _machine.Name).Machine.UidShift;
        Assert.Equal((shift, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute), ((uint?)dir.Uid, dir.Permissions));
        Assert.NotEqual(0u, shift);
    }

    [Fact]
    public async Task Nothing_of_the_agent_is_in_the_image_the_machine_gets_it_through_binds()
    {
        Assert.True(_machine.Agent is not null, _machine.AgentProblem);
        // In the machine: its unit and its program are there, each a mount of the host's, not a file of the machine's own.
        foreach (var path in new[] { $"/etc/systemd/system/{AgentSetup.UnitName}", "/run/nspawn-agent-bin", "/run/nspawn-agent-dotnet" })
        {
            var mount = await _machine.ExecAsync("findmnt", "-n", "-o", "TARGET", "--mountpoint", path);
            Assert.True(mount.ExitCode == 0 && mount.StandardOutput.Trim() == path, $"{path} is not a mount in the machine: {mount}");
        }
        Assert.Equal(0, (await _machine.ExecAsync("test", "-f", "/run/nspawn-agent-bin/Nspawn.Testing.Agent.dll")).ExitCode);
        // In the image the machine runs from: neither the unit nor the agent, anywhere.
        Assert.False(File.Exists(Path.Combine(_machine.ImageDir, "etc/systemd/system", AgentSetup.UnitName)));
        // find never follows the image's links (-P), which may point anywhere on the host.
        var found = await Shell.RunAsync("find", ["-P", _machine.ImageDir, "-xdev", "(", "-name", "Nspawn.Testing.Agent*", "-o", "-name", "nspawn-agent*", ")", "-print"]);
        Assert.Equal(0, found.ExitCode);
        Assert.True(found.Output.Trim() == "", "the image holds agent files: " + found.Output);
        // The same search finds what the image does hold.
        Assert.Contains("/etc/systemd/system", (await Shell.RunAsync("find", ["-P", _machine.ImageDir, "-xdev", "-name", "system", "-print"])).Output);
    }

    [Fact]
    public async Task A_link_planted_for_the_socket_is_not_followed()
    {
        // A socket of the host's that listens: a host that followed the link would connect to it (and it would see that).
        var lureDir = Directory.CreateTempSubdirectory("nspawn-lure-").FullName;
        try
        {
            var lurePath = Path.Combine(lureDir, "lure.sock");
            using var lure = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            lure.Bind(new UnixDomainSocketEndPoint(lurePath));
            lure.Listen(8);

            // The guest replaces its socket with a link to that socket of the host: the host refuses to connect.
            await _machine.ExecCheckedAsync("sh", "-c", $"mv /run/nspawn-agent/agent.sock /run/nspawn-agent/real.sock && ln -s '{lurePath}' /run/nspawn-agent/agent.sock");
            var e = await Assert.ThrowsAnyAsync<IOException>(() => _machine.ExecAsync("true"));
            Assert.Contains("socket in", e.Message);
            Assert.EndsWith("is not a socket.", e.Message);
            // Nobody connected to the lure (a connect to a listening socket is queued at once, accepted or not)...
            Assert.False(lure.Poll(0, SelectMode.SelectRead), "the host followed the link to the lure");
            // ...and this check sees a connection when there is one.
            using var control = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            control.Connect(new UnixDomainSocketEndPoint(lurePath));
            Assert.True(lure.Poll(TimeSpan.FromMinutes(1), SelectMode.SelectRead));
        }
        finally
        {
            Directory.Delete(lureDir, recursive: true);
        }
    }

    [Fact]
    public async Task InvokeAsync_calls_static_methods_inside_the_machine()
    {
        Assert.Equal(5, await _machine.InvokeAsync(() => GuestCode.Add(2, 3)));
        Assert.Equal(_machine.Image, await _machine.InvokeAsync(() => GuestCode.Hostname()));
        var path = "/etc/os-release";
        Assert.Equal((await _machine.ReadAllTextAsync(path)).Split('\n').Take(2), await _machine.InvokeAsync(() => GuestCode.LinesAsync(path)));
        Assert.Equal(new GuestCode.Config("web", 81), await _machine.InvokeAsync(() => GuestCode.Echo(new GuestCode.Config("web", 80))));
        await _machine.InvokeAsync(() => GuestCode.Touch("/srv/touched"));
        Assert.Equal("touched", await _machine.ReadAllTextAsync("/srv/touched"));
        await _machine.InvokeAsync(() => GuestCode.TouchAsync("/srv/touched"));
        Assert.Equal("touched async", await _machine.ReadAllTextAsync("/srv/touched"));
        Assert.False(File.Exists("/srv/touched"));
    }

    [Fact]
    public async Task What_the_method_throws_comes_back_with_the_guest_stack_trace()
    {
        var e = await Assert.ThrowsAsync<GuestException>(() => _machine.InvokeAsync(() => GuestCode.Fail("broken inside")));
        Assert.Equal(typeof(InvalidOperationException).FullName, e.GuestType);
        Assert.Equal("broken inside", e.GuestMessage);
        Assert.Contains(nameof(GuestCode.Fail), e.GuestStackTrace);
    }

    [Fact]
    public async Task What_cannot_be_sent_is_refused_with_a_clear_message()
    {
        var text = "abc";
        var instance = await Assert.ThrowsAsync<ArgumentException>(() => _machine.InvokeAsync(() => text.Trim()));
        Assert.Contains("instance method", instance.Message);
        var notACall = await Assert.ThrowsAsync<ArgumentException>(() => _machine.InvokeAsync(() => GuestCode.Add(1, 2) + 1));
        Assert.Contains("single call", notACall.Message);
        var argument = await Assert.ThrowsAsync<NotSupportedException>(() => _machine.InvokeAsync(() => GuestCode.Call(() => 1)));
        Assert.Contains("cannot be sent", argument.Message);
        var result = await Assert.ThrowsAsync<NotSupportedException>(() => _machine.InvokeAsync(() => GuestCode.TypeOfInt()));
        Assert.Contains("cannot be sent back", result.Message);
    }

    [Fact]
    public async Task The_native_agent_serves_commands_and_starts_the_runtime_only_for_InvokeAsync()
    {
        Assert.True(NativeAgent.Find(Path.GetDirectoryName(typeof(AgentSetup).Assembly.Location)!) is not null, "the native agent was not built next to the core");
        var before = await AgentProcessesAsync();
        Assert.Contains(before, p => p.Contains("/nspawn-agent --managed "));
        Assert.DoesNotContain(before, p => p.StartsWith("/run/nspawn-agent-dotnet/dotnet ", StringComparison.Ordinal));
        // The agent is the unit's main process, not a shell around it: a stop, a kill or a jam of MainPID reaches the agent.
        var main = await _machine.ExecCheckedAsync("sh", "-c", "tr '\\0' ' ' < /proc/$(systemctl show -P MainPID nspawn-agent.service)/cmdline");
        Assert.Contains("/nspawn-agent --managed ", main.StandardOutput);
        Assert.DoesNotContain(before, p => p.StartsWith("/bin/sh ", StringComparison.Ordinal));
        Assert.Equal(5, await _machine.InvokeAsync(() => GuestCode.Add(2, 3)));
        Assert.Contains(await AgentProcessesAsync(), p => p.StartsWith("/run/nspawn-agent-dotnet/dotnet ", StringComparison.Ordinal) && p.Contains("--socket /run/nspawn-agent/invoke.sock"));
        Assert.Equal(7, await _machine.InvokeAsync(() => GuestCode.Add(3, 4)));
    }

    [Fact]
    public async Task Where_the_native_agent_cannot_load_the_managed_one_does_all()
    {
        // A tmpfs over the native agent's folder: its loader fails (127), as in a guest whose glibc is too old for it.
        await using var machine = await EphemeralMachine.StartAsync(new StartOptions
        {
            ImageDir = Repo.ImageDir, LogicalName = "managed-agent", NspawnArguments = ["--tmpfs=/run/nspawn-agent-bin/runtimes"],
        });
        Assert.True(machine.Agent is not null, machine.AgentProblem);
        Assert.Equal("out\n", (await machine.ExecCheckedAsync("echo", "out")).StandardOutput);
        Assert.Contains($"/system.slice/{AgentSetup.UnitName}/cmd-", (await machine.ExecCheckedAsync("cat", "/proc/self/cgroup")).StandardOutput);
        // Its commands get the signals the native agent's own start gives (ApiTests): SIGPIPE ignored, as a service of the guest.
        Assert.Contains("SigIgn:\t0000000000001000\n", (await machine.ExecCheckedAsync("cat", "/proc/self/status")).StandardOutput);
        Assert.Equal(5, await machine.InvokeAsync(() => GuestCode.Add(2, 3)));
    }

    [Fact]
    public async Task Without_the_agent_in_the_guest_files_still_work_commands_only_through_machined_and_InvokeAsync_says_why()
    {
        // A tmpfs over the agents' folder: neither the native agent nor the managed one can start, as in a guest without glibc.
        await using var machine = await EphemeralMachine.StartAsync(new StartOptions
        {
            ImageDir = Repo.ImageDir, LogicalName = "no-agent", NspawnArguments = ["--tmpfs=/run/nspawn-agent-bin"],
        });
        Assert.Null(machine.Agent);
        // No guest program is started from the host (it would escape the guest's seccomp filter): only machined may start one.
        if (LaunchOptions.HostHasSystemd)
            Assert.Equal("out\n", (await machine.ExecCheckedAsync("echo", "out")).StandardOutput);
        else
            Assert.Equal(ErrorCodes.NoAgent, (await Assert.ThrowsAsync<NspawnException>(() => machine.ExecAsync("echo", "out"))).Code);
        await machine.WriteAllTextAsync("/srv/file", "content");
        Assert.Equal("content", await machine.ReadAllTextAsync("/srv/file"));
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => machine.InvokeAsync(() => GuestCode.Add(1, 2)));
        Assert.Contains("agent", e.Message);
        Assert.Contains(AgentSetup.UnitName, e.Message);
    }

    /// <summary>The command lines of the agent unit's own processes (not those of its commands' cgroups), read through the guest's /proc.</summary>
    private async Task<string[]> AgentProcessesAsync()
    {
        var cgroup = $"/sys/fs/cgroup/system.slice/{AgentSetup.UnitName}/cgroup.procs";
        var lines = await _machine.ExecCheckedAsync("sh", "-c", "for p in $(cat \"$0\"); do tr '\\0' ' ' < /proc/$p/cmdline; echo; done", cgroup);
        return lines.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }
}
