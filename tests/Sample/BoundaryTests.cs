using Nspawn.Testing;
using Xunit;

namespace Sample.Tests;

/// <summary>
/// The machine is a boundary: what a hostile test, or a package's maintainer script, does as root in the machine,
/// done for real through the API, and what it gets. Guest root is an unprivileged host UID (a user namespace), so
/// nothing the host runs later can be changed from inside.
/// </summary>
public class BoundaryTests
{
    private readonly EphemeralMachine _server = EphemeralMachine.FromEnvironment("server");

    private async Task<string> ShAsync(EphemeralMachine machine, string script) =>
        (await machine.ExecAsync(["sh", "-c", script])).StandardOutput;

    [Fact]
    public async Task Guest_root_is_nobody_on_the_host_and_runs_under_the_seccomp_filter()
    {
        var map = (await _server.ExecCheckedAsync("cat", "/proc/self/uid_map")).StandardOutput.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("0", map[0]);
        Assert.NotEqual("0", map[1]);
        Assert.Equal("65536", map[2]);
        // A command the host asks for runs inside, under the guest's own seccomp filter (mode 2).
        Assert.Contains("Seccomp:\t2", (await _server.ExecCheckedAsync("cat", "/proc/self/status")).StandardOutput);
    }

    [Fact]
    public async Task No_read_only_bind_can_be_made_writable_from_inside()
    {
        var mark = $"pwned-{Guid.NewGuid():N}";
        var hostDotnet = Path.GetDirectoryName(Environment.ProcessPath)!;
        // The build's output (/opt/app and the tests' folder at its own path), the .NET runtime, the agent and its settings.
        string[] binds = ["/opt/app", AppContext.BaseDirectory.TrimEnd('/'), "/run/nspawn-agent-dotnet", "/run/nspawn-agent-bin", "/run/nspawn-agent-etc"];
        foreach (var bind in binds)
        {
            var attempts = $"""
                p='{bind}'
                mount -o remount,bind,rw "$p" && echo remounted
                touch "$p/{mark}" && echo written
                unshare -m sh -c 'mount -o remount,bind,rw "$0" && touch "$0/{mark}" && echo "written from another mount namespace"' "$p"
                # Mounting over the bind hides it in the guest (in a mount namespace of its own: the other tests use these
                # folders meanwhile); the host's folder stays as it is.
                unshare -m sh -c 'mount -t tmpfs none "$0" && touch "$0/{mark}" && umount "$0"' "$p"
                test -e "$p/{mark}" && echo "still there"
                true
                """;
            Assert.Equal("", (await ShAsync(_server, attempts)).Trim());
        }
        Assert.False(File.Exists(Path.Combine(AppContext.BaseDirectory, mark)), "the guest wrote into the tests' output folder");
        Assert.False(File.Exists(Path.Combine(hostDotnet, mark)), "the guest wrote into the host's .NET folder");
    }

    [Fact]
    public async Task No_device_node_can_be_made_and_the_writable_bind_gets_the_users_files()
    {
        var name = $"left-{Guid.NewGuid():N}";
        var output = await ShAsync(_server, $"""
            mknod /tmp/disk b 8 0 && echo made
            mknod /srv/shared/{name}.disk b 8 0 && echo made in the bind
            cp /bin/sh /srv/shared/{name} && chmod 4755 /srv/shared/{name} && ln /srv/shared/{name} /srv/shared/{name}.link
            true
            """);
        Assert.Equal("", output.Trim());
        // The guest's root writes as the owner of the bind's folder (under sudo the user, whom the build gave it to), never as another.
        var shared = Path.Combine(AppContext.BaseDirectory, "../../../obj/shared");
        var left = Path.Combine(shared, name);
        Assert.True(File.Exists(left), $"{left} should be the file the guest left");
        Assert.Equal(Owner(shared), Owner(left));
        if (uint.TryParse(Environment.GetEnvironmentVariable("SUDO_UID"), out var sudoUser) && sudoUser != 0)
            Assert.Equal(sudoUser, Owner(left));
        Assert.False(File.Exists(left + ".disk"));
    }

    [Fact]
    public async Task CopyFrom_refuses_links_that_lead_out_of_the_copy()
    {
        await ShAsync(_server, """
            rm -rf /tmp/hostile /tmp/inside && mkdir -p /tmp/hostile /tmp/inside && cd /tmp/hostile
            ln -s . a && ln -s a/a/a/../../../etc/hostname esc && ln -s a/.. up && echo fine > kept
            cd /tmp/inside && ln -s . a && ln -s a/a/kept alias && echo fine > kept
            """);
        // Made as the user under sudo, even while another test's call holds root (credentials are the whole process's).
        string dir;
        using (ProcessPrivileges.Current.UnderSudo ? ProcessPrivileges.Current.User() : null)
            dir = Directory.CreateTempSubdirectory("sample-copy-").FullName;
        try
        {
            await Assert.ThrowsAsync<IOException>(() => _server.CopyFromAsync("/tmp/hostile", dir));
            // Links that stay inside are kept, a loop among them too.
            await _server.CopyFromAsync("/tmp/inside", dir);
            Assert.Equal("fine\n", File.ReadAllText(Path.Combine(dir, "inside/alias")));
            Assert.Equal(".", new FileInfo(Path.Combine(dir, "inside/a")).LinkTarget);
            // Nothing that was copied leads out of the folder it was copied to.
            foreach (var link in LinksUnder(dir))
                Assert.StartsWith(dir, Path.GetFullPath(new FileInfo(link).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The links in a folder and its subfolders. Directory.Enumerate* with AllDirectories follows links to folders, so a
    /// copied `a -> .` (which stays inside, and may be copied before the refusal, in whatever order the guest lists it) loops.</summary>
    private static IEnumerable<string> LinksUnder(string dir)
    {
        foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos())
        {
            if (entry.LinkTarget is not null)
                yield return entry.FullName;
            else if (entry is DirectoryInfo folder)
                foreach (var link in LinksUnder(folder.FullName))
                    yield return link;
        }
    }

    [Fact]
    public async Task A_guest_that_jams_its_agent_cannot_hang_a_call()
    {
        await using var machine = await EphemeralMachine.StartAsync(new());
        // The command stops the agent that runs it, then fills the agent socket's backlog: this call gets no answer.
        var jam = machine.ExecAsync(["sh", "-c", """
            kill -STOP $(systemctl show -P MainPID nspawn-agent.service)
            exec perl -MIO::Socket::UNIX -e 'my @s; for (1..1000) { my $c = IO::Socket::UNIX->new(Peer => "/run/nspawn-agent/agent.sock", Blocking => 0) or last; push @s, $c } sleep 600'
            """], new ExecOptions { Timeout = TimeSpan.FromSeconds(15) });
        // (Time enough for the command to stop the agent on a loaded host: else the agent ends it at its timeout and answers.)
        await AssertEndsWithTimeoutAsync(jam);
        // Now even the connection cannot be made: the call still ends at its timeout.
        await AssertEndsWithTimeoutAsync(machine.ExecAsync(["true"], new ExecOptions { Timeout = TimeSpan.FromSeconds(5) }));
    }

    /// <summary>The call ends by itself, with its own TimeoutException; the bound only turns a hang into a failure.</summary>
    private static async Task AssertEndsWithTimeoutAsync(Task call)
    {
        Assert.Same(call, await Task.WhenAny(call, Task.Delay(TimeSpan.FromMinutes(2))));
        await Assert.ThrowsAsync<TimeoutException>(() => call);
    }

    private static uint Owner(string path)
    {
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%u", path]) { RedirectStandardOutput = true })!;
        var text = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        return uint.Parse(text);
    }
}
