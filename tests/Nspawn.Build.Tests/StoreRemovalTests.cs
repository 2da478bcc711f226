namespace Nspawn.Build.Tests;

/// <summary>
/// Removing leftovers from a store the user may be able to write: folders and subvolumes go by name in folders held
/// open, lock files are never opened unless they are regular files. Each test puts in the store for real what a user
/// could (links out of it, a FIFO, a folder of theirs) and checks that nothing outside changed.
/// </summary>
[Trait("Category", "Unit")]
public sealed class StoreRemovalTests : IDisposable
{
    private const uint User = 4242;
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-removal-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task RunAsync(string program, params string[] args)
    {
        var run = await Shell.RunAsync(program, args);
        Assert.True(run.ExitCode == 0, $"{program} {string.Join(' ', args)}: {run}");
    }

    private string Outside()
    {
        var outside = Directory.CreateDirectory(Path.Combine(_dir, "outside")).FullName;
        File.WriteAllText(Path.Combine(outside, "precious"), "keep\n");
        return outside;
    }

    /// <summary>What a guest and its user may leave in a snapshot: links out, a FIFO, a node, a read-only folder of the user's.</summary>
    private static async Task FillAsync(string tree, string outside)
    {
        var users = Directory.CreateDirectory(Path.Combine(tree, "home/u")).FullName;
        File.WriteAllText(Path.Combine(users, "file"), "x");
        await RunAsync("chown", "-R", $"{User}:{User}", users);
        Directory.CreateSymbolicLink(Path.Combine(users, "out"), outside);
        File.CreateSymbolicLink(Path.Combine(tree, "precious"), Path.Combine(outside, "precious"));
        await RunAsync("mkfifo", Path.Combine(tree, "fifo"));
        await RunAsync("mknod", Path.Combine(tree, "null"), "c", "1", "3");
        await RunAsync("chmod", "0500", users);
    }

    [Fact]
    public async Task A_leftover_goes_without_anything_a_link_in_it_leads_to()
    {
        var outside = Outside();
        var store = Directory.CreateDirectory(Path.Combine(_dir, "store")).FullName;
        var snapshot = Directory.CreateDirectory(Path.Combine(store, ".#machine.bookworm1a2b3c4d")).FullName;
        await FillAsync(snapshot, outside);

        await Subvolumes.RemoveTreeAsync(store, snapshot, CancellationToken.None);

        Assert.Null(FileStatus.Of(snapshot));
        Assert.Equal(["precious"], Directory.EnumerateFileSystemEntries(outside).Select(Path.GetFileName));
        Assert.Equal("keep\n", File.ReadAllText(Path.Combine(outside, "precious")));
    }

    [Fact]
    public async Task Subvolumes_go_whole_and_read_only_ones_in_a_folder_one_by_one()
    {
        var outside = Outside();
        await using var store = await TestStore.CreateAsync(512L << 20);
        var snapshot = Path.Combine(store.ChrootsDir, ".#machine.bookworm1a2b3c4d");
        await RunAsync("btrfs", "-q", "subvolume", "create", snapshot);
        await FillAsync(snapshot, outside);
        // systemd makes /var/lib/machines a subvolume of its own.
        Directory.CreateDirectory(Path.Combine(snapshot, "var/lib"));
        await RunAsync("btrfs", "-q", "subvolume", "create", Path.Combine(snapshot, "var/lib/machines"));
        // A cache import cut short: a plain folder holding a read-only subvolume.
        var received = Directory.CreateDirectory(Path.Combine(store.ChrootsDir, ".#bookworm.recv-0123456789abcdef")).FullName;
        await RunAsync("btrfs", "-q", "subvolume", "create", Path.Combine(received, "bookworm"));
        File.WriteAllText(Path.Combine(received, "bookworm/file"), "x");
        await RunAsync("btrfs", "-q", "property", "set", "-ts", Path.Combine(received, "bookworm"), "ro", "true");

        await Subvolumes.RemoveTreeAsync(store.ChrootsDir, snapshot, CancellationToken.None);
        await Subvolumes.RemoveTreeAsync(store.ChrootsDir, received, CancellationToken.None);

        Assert.Null(FileStatus.Of(snapshot));
        Assert.Null(FileStatus.Of(received));
        var list = await Shell.RunAsync("btrfs", ["subvolume", "list", store.ChrootsDir]);
        Assert.DoesNotContain("machine", list.Output);
        Assert.DoesNotContain("recv", list.Output);
        Assert.Equal("keep\n", File.ReadAllText(Path.Combine(outside, "precious")));
    }

    [Fact]
    public async Task A_lock_that_is_no_regular_file_is_never_opened_and_counts_as_held()
    {
        var outside = Outside();
        var store = Directory.CreateDirectory(Path.Combine(_dir, "store")).FullName;
        await RunAsync("mkfifo", Path.Combine(store, ".#.#machine.fifo.lck"));
        File.CreateSymbolicLink(Path.Combine(store, ".#.#machine.link.lck"), Path.Combine(outside, "precious"));
        File.WriteAllText(Path.Combine(store, ".#.#machine.free.lck"), "");
        var held = Path.Combine(store, ".#.#machine.held.lck");
        using var holder = File.Open(held, FileMode.Create, FileAccess.ReadWrite, FileShare.None);

        using var handle = NativeFile.Open(store, NativeFile.ReadOnly | NativeFile.Directory);
        // Bounded only to turn a hang into a failure.
        var answers = await Task.Run(() => new[] { "fifo", "link", "free", "held", "none" }.Select(n => LockProbe.IsHeld($".#.#machine.{n}.lck", handle)).ToList())
            .WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal([true, true, false, true, false], answers);
        Assert.True(LockProbe.IsHeld(held));
        StoreEntry.RemoveFile(Path.Combine(store, ".#.#machine.link.lck"));
        Assert.Null(FileStatus.Of(Path.Combine(store, ".#.#machine.link.lck")));
        Assert.Equal("keep\n", File.ReadAllText(Path.Combine(outside, "precious")));
    }
}
