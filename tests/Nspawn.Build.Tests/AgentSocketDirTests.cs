using Nspawn.Build.Agent;

namespace Nspawn.Build.Tests;

/// <summary>
/// The agent's socket folder is the one host folder a guest writes: it is a small tmpfs of its own, so a guest cannot
/// fill the host's /run through it, and it goes (unmounted, no link followed) with the machine or with the reaper.
/// Needs root (it mounts), in a temporary folder of its own.
/// </summary>
public sealed class AgentSocketDirTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-agentdir-").FullName;

    private string AgentDir => Path.Combine(_dir, "nspawn-sock-1a2b3c4d");
    private string SocketDir => Path.Combine(AgentDir, "sock");

    public void Dispose()
    {
        foreach (var mount in MountsUnder(_dir).Select(m => m.MountPoint).Reverse())
            Shell.RunAsync("umount", ["--lazy", mount]).GetAwaiter().GetResult();
        Directory.Delete(_dir, recursive: true);
    }

    private static List<Mount> MountsUnder(string dir) => MountTable.Read().Where(m => MountTable.IsUnder(m.MountPoint, dir)).ToList();

    private (IReadOnlyList<string> Options, string? Problem) Prepare(uint? guestRootUid = null)
    {
        var (options, _, problem) = AgentSetup.PrepareDir(AgentDir, null, guestRootUid);
        Assert.Null(problem);
        return (options, problem);
    }

    [Fact]
    public void The_socket_folder_is_a_small_tmpfs_that_a_guest_cannot_grow_and_it_goes_with_the_machine()
    {
        var (options, _) = Prepare();
        Assert.Contains($"--bind={SocketDir}:/run/nspawn-agent", options);
        var mount = Assert.Single(MountsUnder(_dir));
        Assert.Equal((SocketDir, "tmpfs"), (mount.MountPoint, mount.FsType));
        Assert.Subset(mount.Options.Split(',').ToHashSet(), new HashSet<string> { "nosuid", "nodev", "noexec" });
        Assert.Contains("size=256k", mount.SuperOptions);
        Assert.Contains("nr_inodes=64", mount.SuperOptions);
        var status = FileStatus.Of(SocketDir)!;
        Assert.Equal((0u, 0u, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute), (status.Uid, status.Gid, status.Permissions));

        // More data than the limit, then more files than the limit: each is refused for lack of space.
        var tooMuch = Assert.ThrowsAny<IOException>(() => File.WriteAllBytes(Path.Combine(SocketDir, "fill"), new byte[1 << 20]));
        Assert.Contains("No space left on device", tooMuch.Message);
        File.Delete(Path.Combine(SocketDir, "fill"));
        var tooMany = Assert.ThrowsAny<IOException>(() =>
        {
            for (var i = 0; i < 1000; i++)
                File.WriteAllBytes(Path.Combine(SocketDir, $"f{i}"), []);
        });
        Assert.Contains("No space left on device", tooMany.Message);

        // What a guest leaves there, links included, goes; what a link points to stays.
        var outside = Path.Combine(_dir, "outside");
        File.WriteAllText(outside, "host file\n");
        foreach (var name in new[] { "f0", "f1", "f2" })
            File.Delete(Path.Combine(SocketDir, name));
        File.CreateSymbolicLink(Path.Combine(SocketDir, "f0"), outside);
        Directory.CreateDirectory(Path.Combine(SocketDir, "f1"));
        File.CreateSymbolicLink(Path.Combine(SocketDir, "f1", "up"), _dir);

        AgentSetup.RemoveDir(AgentDir);
        Assert.Empty(MountsUnder(_dir));
        Assert.False(Directory.Exists(AgentDir));
        Assert.Equal("host file\n", File.ReadAllText(outside));
    }

    [Fact]
    public void For_a_guest_in_a_user_namespace_the_socket_folder_is_its_roots()
    {
        Prepare(guestRootUid: 100000);
        var status = FileStatus.Of(SocketDir)!;
        Assert.Equal((100000u, 100000u), (status.Uid, status.Gid));
        Assert.Contains("uid=100000", Assert.Single(MountsUnder(_dir)).SuperOptions);
        AgentSetup.RemoveDir(AgentDir);
        Assert.Empty(MountsUnder(_dir));
    }

    [Fact]
    public void Preparing_again_replaces_what_was_there_and_leaves_one_mount()
    {
        Prepare();
        File.WriteAllText(Path.Combine(SocketDir, "old"), "");
        Prepare();
        Assert.Single(MountsUnder(_dir));
        Assert.False(File.Exists(Path.Combine(SocketDir, "old")));
        AgentSetup.RemoveDir(AgentDir);
        Assert.Empty(MountsUnder(_dir));
    }

    [Fact]
    public void The_reaper_removes_the_folder_of_a_machine_whose_build_died_before_recording_it()
    {
        Prepare();
        var alive = Path.Combine(_dir, "nspawn-alive-1a2b3c4d");
        AgentSetup.PrepareDir(alive, null, null);
        var recorded = Path.Combine(_dir, "nspawn-recorded-1a2b3c4d");
        AgentSetup.PrepareDir(recorded, null, null);
        // A build that is gone: this process's PID with another start time.
        File.WriteAllText(Path.Combine(AgentDir, AgentSetup.OwnerFile), $"{Environment.ProcessId} 1\n");
        File.WriteAllText(Path.Combine(recorded, AgentSetup.OwnerFile), $"{Environment.ProcessId} 1\n");

        var reaped = AgentSetup.ReapIn(_dir, name => name == Path.GetFileName(recorded));
        Assert.Equal([AgentDir], reaped);
        Assert.False(Directory.Exists(AgentDir));
        Assert.Equal([Path.Combine(alive, "sock"), Path.Combine(recorded, "sock")], MountsUnder(_dir).Select(m => m.MountPoint).Order(StringComparer.Ordinal));
        AgentSetup.RemoveDir(alive);
        AgentSetup.RemoveDir(recorded);
        Assert.Empty(MountsUnder(_dir));
    }
}
