namespace Nspawn.Build.Tests;

/// <summary>
/// What a guest's root leaves in a writable bind (a folder of the sudo user's), given back after its machine stops:
/// each test leaves there for real what a hostile guest would (a set-id copy of a shell with a second link, a node
/// of the host's disk, a file with capabilities, an immutable one) and checks that the user gets none of it as it was.
/// </summary>
[Trait("Category", "Unit")]
public sealed class GiveBackTests : IDisposable
{
    private const uint User = 4242;
    private const UnixFileMode SetId = UnixFileMode.SetUser | UnixFileMode.SetGroup;
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-giveback-").FullName;
    private readonly List<string> _immutable = [];

    public void Dispose()
    {
        foreach (var path in _immutable.Where(p => FileStatus.Of(p) is not null))
            Run("chattr", "-i", path);
        Directory.Delete(_dir, recursive: true);
    }

    private static void Run(string program, params string[] args)
    {
        var run = Shell.RunAsync(program, args).GetAwaiter().GetResult();
        Assert.True(run.ExitCode == 0, $"{program} {string.Join(' ', args)}: {run}");
    }

    /// <summary>A writable bind: a folder of the user's.</summary>
    private string Bind()
    {
        var bind = Directory.CreateDirectory(Path.Combine(_dir, "bind")).FullName;
        Run("chown", $"{User}:{User}", bind);
        return bind;
    }

    /// <summary>A file the guest's root left, with its owner and mode.</summary>
    private static string Leave(string path, string mode, uint owner = 0)
    {
        File.WriteAllBytes(path, File.ReadAllBytes("/bin/true"));
        Run("chown", $"{owner}:{owner}", path);
        Run("chmod", mode, path);
        return path;
    }

    private static void GiveBack(string bind) =>
        Ownership.ReturnBinds((User, User), [new Machine("web", "nspawn-web-1", "bookworm", "/c/bookworm", 1, 1, 1, 1, null, null, []) { WritableBinds = [bind] }], null);

    private static FileStatus Status(string path) => FileStatus.Of(path) ?? throw new InvalidOperationException($"'{path}' is gone");

    [Fact]
    public void A_setuid_root_file_with_a_second_link_loses_its_set_id_bits()
    {
        var bind = Bind();
        var shell = Leave(Path.Combine(bind, "bash"), "6755");
        Run("ln", shell, Path.Combine(bind, "bash2"));

        GiveBack(bind);

        foreach (var name in new[] { "bash", "bash2" })
        {
            var status = Status(Path.Combine(bind, name));
            Assert.Equal(UnixFileMode.None, status.Permissions & SetId);
            Assert.Equal(2u, status.Links);
        }
        // A root file with another link is still not given: the other link could be anywhere.
        Assert.Equal(0u, Status(shell).Uid);
    }

    [Fact]
    public void A_device_node_is_removed_never_handed_to_the_user()
    {
        var bind = Bind();
        var sub = Directory.CreateDirectory(Path.Combine(bind, "sub")).FullName;
        Run("mknod", Path.Combine(bind, "disk"), "b", "7", "0");
        Run("mknod", Path.Combine(sub, "mem"), "c", "1", "1");
        // Where the guest's root is the user on disk (a user namespace with rootidmap), its nodes are the user's.
        Run("mknod", Path.Combine(bind, "users"), "b", "7", "0");
        Run("chown", $"{User}:{User}", Path.Combine(bind, "users"));
        Run("ln", Path.Combine(bind, "disk"), Path.Combine(sub, "disk2"));

        GiveBack(bind);

        Assert.Null(FileStatus.Of(Path.Combine(bind, "disk")));
        Assert.Null(FileStatus.Of(Path.Combine(sub, "disk2")));
        Assert.Null(FileStatus.Of(Path.Combine(sub, "mem")));
        Assert.Null(FileStatus.Of(Path.Combine(bind, "users")));
        Assert.Equal(User, Status(sub).Uid);
    }

    [Fact]
    public void The_users_own_set_id_files_made_in_the_run_lose_the_bits_too()
    {
        var bind = Bind();
        // As guest-root's files are on disk with rootidmap: the user's already.
        var own = Leave(Path.Combine(bind, "own"), "6755", User);
        var single = Leave(Path.Combine(bind, "single"), "2750");

        GiveBack(bind);

        Assert.Equal((User, UnixFileMode.None), (Status(own).Uid, Status(own).Permissions & SetId));
        Assert.Equal((User, UnixFileMode.None), (Status(single).Uid, Status(single).Permissions & SetId));
        Assert.Equal(UnixFileMode.UserExecute | UnixFileMode.GroupExecute, Status(own).Permissions & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute));
    }

    [Fact]
    public async Task Set_id_files_are_found_in_any_folder_and_made_harmless_even_immutable_or_with_capabilities()
    {
        var bind = Bind();
        // A folder of another owner, which the walk would not enter to give anything back, but which the user can read.
        var other = Directory.CreateDirectory(Path.Combine(bind, "other")).FullName;
        var hidden = Leave(Path.Combine(other, "bash"), "4755");
        Run("ln", hidden, Path.Combine(other, "bash2"));
        Run("chown", "1001:1001", other);
        // Another user's set-id file: running it would make the user that one.
        var foreign = Leave(Path.Combine(bind, "foreign"), "4755", 1001);
        // Immutable: chmod and chown fail on it until the flag goes.
        var immutable = Leave(Path.Combine(bind, "immutable"), "4755");
        Run("ln", immutable, Path.Combine(bind, "immutable2"));
        Run("chattr", "+i", immutable);
        _immutable.Add(immutable);
        // File capabilities make a root of whoever runs it, set-id bit or not.
        var capable = Leave(Path.Combine(bind, "capable"), "0755");
        Run("ln", capable, Path.Combine(bind, "capable2"));
        Run("setcap", "cap_setuid+ep", capable);

        GiveBack(bind);

        Assert.Equal(UnixFileMode.None, Status(hidden).Permissions & SetId);
        Assert.Equal(UnixFileMode.None, Status(foreign).Permissions & SetId);
        Assert.Equal(UnixFileMode.None, Status(immutable).Permissions & SetId);
        var caps = await Shell.RunAsync("getcap", [capable]);
        Assert.DoesNotContain("cap_setuid", caps.Output);
    }

    [Fact]
    public void A_device_node_in_an_immutable_folder_is_removed_too()
    {
        var bind = Bind();
        var sub = Directory.CreateDirectory(Path.Combine(bind, "sub")).FullName;
        Run("mknod", Path.Combine(sub, "disk"), "b", "7", "0");
        Run("chattr", "+i", sub);
        _immutable.Add(sub);

        GiveBack(bind);

        Assert.Null(FileStatus.Of(Path.Combine(sub, "disk")));
    }

    [Fact]
    public void What_was_there_before_the_run_is_left_as_it_was()
    {
        var bind = Bind();
        var old = Leave(Path.Combine(bind, "old"), "4755");
        Run("ln", old, Path.Combine(bind, "old2"));
        Run("mknod", Path.Combine(bind, "disk"), "b", "7", "0");
        // Change times count in seconds: the run begins at the next one.
        var since = DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1;
        while (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() < since * 1000 + 50)
            Thread.Sleep(50);
        var fresh = Leave(Path.Combine(bind, "new"), "4755");
        Run("ln", fresh, Path.Combine(bind, "new2"));

        Ownership.ReturnTo((User, User), since, [bind], null, recursive: true, guest: true);

        Assert.Equal((0u, UnixFileMode.SetUser), (Status(old).Uid, Status(old).Permissions & SetId));
        Assert.Equal(0u, Status(Path.Combine(bind, "disk")).Uid);
        Assert.Equal(UnixFileMode.None, Status(fresh).Permissions & SetId);
    }

    [Fact]
    public void The_walk_at_the_end_of_a_build_never_hands_over_a_device_node_either()
    {
        var project = Bind();
        Run("mknod", Path.Combine(project, "disk"), "b", "7", "0");

        Ownership.ReturnTo((User, User), Ownership.BuildStart, [project], null, recursive: true);

        Assert.Equal(0u, Status(Path.Combine(project, "disk")).Uid);
    }

    [Fact]
    public async Task Fifos_and_sockets_are_given_back_without_being_opened()
    {
        var bind = Bind();
        var fifo = Path.Combine(bind, "fifo");
        Run("mkfifo", fifo);
        var socket = Path.Combine(bind, "socket");
        // .NET removes the socket's file when the socket goes: it stays open until the end.
        using var listener = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        listener.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(socket));

        // Bounded only to turn a hang into a failure: opening a FIFO with no writer would block.
        await Task.Run(() => GiveBack(bind)).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(User, Status(fifo).Uid);
        Assert.Equal(User, Status(socket).Uid);
    }
}
