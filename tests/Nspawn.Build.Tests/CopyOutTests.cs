using System.Formats.Tar;
using System.Runtime.InteropServices;
using System.Text;

namespace Nspawn.Build.Tests;

/// <summary>
/// A tar stream made by a guest, unpacked into a host folder: nothing outside the copied tree ("top") is
/// written, no link is followed while writing, and no link left in the copy leads out of it.
/// </summary>
[Trait("Category", "Unit")]
public sealed class CopyOutTests : IDisposable
{
    private static readonly DateTime Old = new(2001, 2, 3, 4, 5, 6, DateTimeKind.Utc);
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-copyout-").FullName;
    private string Destination => Path.Combine(_dir, "dest");
    private string Top => Path.Combine(Destination, "top");
    private string Victim => Path.Combine(Destination, "victim");

    public CopyOutTests()
    {
        // The user's files beside the copied tree, and a folder beside the destination.
        Directory.CreateDirectory(Path.Combine(Destination, "mine"));
        Directory.CreateDirectory(Path.Combine(_dir, "outside"));
        File.WriteAllText(Victim, "victim\n");
        File.WriteAllText(Path.Combine(Destination, "mine/kept"), "kept\n");
        File.WriteAllText(Path.Combine(_dir, "outside/kept"), "kept\n");
        foreach (var file in new[] { Victim, Path.Combine(Destination, "mine/kept"), Path.Combine(_dir, "outside/kept") })
            File.SetLastWriteTimeUtc(file, Old);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [DllImport("libc")] private static extern uint geteuid();
    [DllImport("libc")] private static extern uint getegid();
    [DllImport("libc", SetLastError = true)] private static extern nint realpath(string path, nint resolved);
    [DllImport("libc")] private static extern void free(nint pointer);

    private static GnuTarEntry Folder(string name) => new(TarEntryType.Directory, name) { Mode = (UnixFileMode)0b111_101_101 };

    private static GnuTarEntry Regular(string name, string content, UnixFileMode mode = (UnixFileMode)0b110_100_100) =>
        new(TarEntryType.RegularFile, name) { Mode = mode, DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)) };

    private static GnuTarEntry Link(string name, string target) => new(TarEntryType.SymbolicLink, name) { LinkName = target };

    private static GnuTarEntry HardLink(string name, string target) => new(TarEntryType.HardLink, name) { LinkName = target, Mode = (UnixFileMode)0b110_100_100 };

    private async Task ExtractAsync(params TarEntry[] entries)
    {
        using var archive = new MemoryStream();
        await using (var writer = new TarWriter(archive, TarEntryFormat.Gnu, leaveOpen: true))
            foreach (var entry in entries)
                await writer.WriteEntryAsync(entry);
        archive.Position = 0;
        using var root = RootedFile.OpenRoot(Destination);
        await CopyOut.ExtractAsync(archive, root, "top", geteuid(), getegid(), CancellationToken.None);
    }

    /// <summary>Every path outside the copied tree, with what it is, holds and when it was written; links are not followed.</summary>
    private Dictionary<string, string> Outside()
    {
        var seen = new Dictionary<string, string>();
        void Walk(string dir)
        {
            foreach (var path in Directory.EnumerateFileSystemEntries(dir).Where(p => p != Top))
            {
                var status = FileStatus.Of(path)!;
                seen[path] = status.IsSymlink ? $"link {new FileInfo(path).LinkTarget}"
                    : status.IsDirectory ? "folder"
                    : $"file {File.ReadAllText(path)} {File.GetLastWriteTimeUtc(path):O}";
                if (status.IsDirectory)
                    Walk(path);
            }
        }
        Walk(_dir);
        seen["/etc/hostname"] = $"{File.ReadAllText("/etc/hostname")} {File.GetLastWriteTimeUtc("/etc/hostname"):O}";
        return seen;
    }

    /// <summary>The links of the copied tree, found without following any.</summary>
    private static IEnumerable<string> Links(string dir) =>
        FileStatus.Of(dir) is { IsDirectory: true }
            ? Directory.EnumerateFileSystemEntries(dir).SelectMany(p => FileStatus.Of(p)!.IsSymlink ? [p] : Links(p))
            : [];

    /// <summary>Where the kernel takes a path, every link followed; null when it leads nowhere.</summary>
    private static string? Resolved(string path)
    {
        var resolved = realpath(path, 0);
        if (resolved == 0)
            return null;
        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            free(resolved);
        }
    }

    private void AssertNoLinkLeadsOut()
    {
        foreach (var link in Links(Top))
            if (Resolved(link) is { } target)
                Assert.True(target == Top || target.StartsWith(Top + "/"), $"{link} -> {new FileInfo(link).LinkTarget} leads to {target}, outside the copied tree.");
    }

    private async Task AssertRefusedAsync(string entry, params TarEntry[] entries)
    {
        // The harm first, then the refusal.
        var before = Outside();
        var e = await Record.ExceptionAsync(() => ExtractAsync(entries));
        Assert.Equal(before, Outside());
        AssertNoLinkLeadsOut();
        Assert.Contains($"'{entry}'", Assert.IsAssignableFrom<IOException>(e).Message);
    }

    public static TheoryData<string, string, TarEntry[]> Refused => new()
    {
        {
            "a link out through a link to its own folder", "top/esc",
            [Folder("top/"), Link("top/a", "."), Link("top/esc", "a/../victim")]
        },
        {
            "a link out through a link made after it", "top/esc",
            [Folder("top/"), Link("top/esc", "a/../victim"), Link("top/a", ".")]
        },
        {
            "a file below a link that leads out", "top/up",
            [Folder("top/"), Link("top/a", "."), Link("top/up", "a/.."), Regular("top/up/victim", "pwned\n")]
        },
        {
            "an empty file below a link that leads out (it would truncate)", "top/up",
            [Folder("top/"), Link("top/a", "."), Link("top/up", "a/.."), Regular("top/up/victim", "")]
        },
        {
            "a folder below a link that leads out", "top/up",
            [Folder("top/"), Link("top/a", "."), Link("top/up", "a/.."), Folder("top/up/made/")]
        },
        {
            "a file written over a link of the copy", "top/l",
            [Folder("top/"), Link("top/a", "."), Link("top/l", "a/../victim"), Regular("top/l", "pwned\n")]
        },
        {
            "a link out, then a refused entry", "top/fifo",
            [Folder("top/"), Link("top/a", "."), Link("top/esc", "a/../victim"), new GnuTarEntry(TarEntryType.Fifo, "top/fifo")]
        },
        {
            "a file below a link that stays inside", "top/link",
            [Folder("top/"), Folder("top/sub/"), Link("top/link", "sub"), Regular("top/link/x", "x\n")]
        },
        { "an absolute link", "top/abs", [Folder("top/"), Link("top/abs", "/etc/hostname")] },
        { "a link climbing out", "top/up", [Folder("top/"), Link("top/up", "../victim")] },
        { "a hard link to a file outside", "top/h", [Folder("top/"), HardLink("top/h", "victim")] },
        {
            "a hard link through a link", "top/h",
            [Folder("top/"), Link("top/a", "."), Link("top/up", "a/.."), HardLink("top/h", "top/up/victim")]
        },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task A_hostile_archive_is_refused_and_changes_nothing_outside_the_copy(string what, string entry, TarEntry[] entries)
    {
        Assert.NotEmpty(what);
        await AssertRefusedAsync(entry, entries);
    }

    [Fact]
    public async Task A_link_to_the_hosts_etc_hostname_through_a_link_to_its_own_folder_is_refused()
    {
        // From top, as many '..' as it has folders above it reach '/': a lexical check counts each 'a' as a folder down.
        var depth = Top.Split('/', StringSplitOptions.RemoveEmptyEntries).Length;
        var target = string.Concat(Enumerable.Repeat("a/", depth)) + string.Concat(Enumerable.Repeat("../", depth)) + "etc/hostname";
        await AssertRefusedAsync("top/esc", Folder("top/"), Link("top/a", "."), Link("top/esc", target));
        Assert.False(File.Exists(Path.Combine(Top, "esc")) || Directory.Exists(Path.Combine(Top, "esc")));
    }

    [Fact]
    public async Task A_link_of_the_user_where_the_copy_goes_is_not_followed()
    {
        File.CreateSymbolicLink(Top, "mine");
        await AssertRefusedAsync("top", Folder("top/"), Regular("top/kept", "pwned\n"));
        Assert.Equal("mine", new FileInfo(Top).LinkTarget);
    }

    [Fact]
    public async Task A_tree_with_links_inside_it_is_copied_as_it_is()
    {
        var before = Outside();
        await ExtractAsync(
            Folder("top/"), Regular("top/file", "hello\n", (UnixFileMode)0b100_111_101_101), Folder("top/sub/"),
            Link("top/near", "file"), Link("top/sub/back", "../file"), Link("top/sub/self", "../sub"), Link("top/self", "."),
            Link("top/dangling", "missing"), Link("top/sub/dangling", "../nothing/here"), HardLink("top/again", "top/file"));

        Assert.Equal(before, Outside());
        AssertNoLinkLeadsOut();
        Assert.Equal("hello\n", File.ReadAllText(Path.Combine(Top, "near")));
        Assert.Equal("hello\n", File.ReadAllText(Path.Combine(Top, "sub/self/back")));
        Assert.Equal("hello\n", File.ReadAllText(Path.Combine(Top, "self/sub/back")));
        Assert.Equal("missing", new FileInfo(Path.Combine(Top, "dangling")).LinkTarget);
        Assert.Equal("../nothing/here", new FileInfo(Path.Combine(Top, "sub/dangling")).LinkTarget);
        var file = FileStatus.Of(Path.Combine(Top, "file"))!;
        var again = FileStatus.Of(Path.Combine(Top, "again"))!;
        Assert.Equal(((UnixFileMode)0b111_101_101, geteuid(), getegid()), (file.Permissions, file.Uid, file.Gid));
        Assert.Equal((1u, 1u), (file.Links, again.Links));
        Assert.Equal("hello\n", File.ReadAllText(Path.Combine(Top, "again")));
    }
}
