using System.Runtime.InteropServices;

namespace Nspawn.Build.Tests;

/// <summary>Paths resolved inside a root as a chroot would: nothing leads out of it, and only regular files are opened.</summary>
[Trait("Category", "Unit")]
public sealed class RootedFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-rooted-").FullName;
    private string Root => Path.Combine(_dir, "root");
    private string Outside => Path.Combine(_dir, "outside");

    public RootedFileTests()
    {
        Directory.CreateDirectory(Path.Combine(Root, "etc"));
        Directory.CreateDirectory(Outside);
        File.WriteAllText(Path.Combine(Root, "etc/hostname"), "inside\n");
        File.WriteAllText(Path.Combine(Outside, "hostname"), "outside\n");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [DllImport("libc", SetLastError = true)] private static extern int mkfifo(string path, uint mode);
    [DllImport("libc")] private static extern uint geteuid();
    [DllImport("libc")] private static extern uint getegid();

    private string Read(string path)
    {
        using var reader = new StreamReader(RootedFile.OpenRead(Root, path));
        return reader.ReadToEnd();
    }

    [Theory]
    [InlineData("/etc/hostname")]
    [InlineData("etc/hostname")]
    [InlineData("/../../etc/hostname")]
    public void A_path_is_read_inside_the_root(string path) => Assert.Equal("inside\n", Read(path));

    [Fact]
    public void Symlinks_absolute_or_climbing_resolve_inside_the_root()
    {
        File.CreateSymbolicLink(Path.Combine(Root, "absolute"), "/etc/hostname");
        File.CreateSymbolicLink(Path.Combine(Root, "climbing"), "../../../../outside/hostname");
        File.CreateSymbolicLink(Path.Combine(Root, "etc/dir"), Outside);
        Assert.Equal("inside\n", Read("/absolute"));
        // On the host, these lead to the outside folder; inside the root they lead nowhere.
        Assert.Equal("outside\n", File.ReadAllText(Path.Combine(Root, "etc/dir/hostname")));
        Assert.Throws<FileNotFoundException>(() => Read("/climbing"));
        Assert.Throws<FileNotFoundException>(() => Read("/etc/dir/hostname"));
    }

    [Fact]
    public void A_write_through_a_symlink_stays_inside_the_root()
    {
        // Dangling inside the root: the write makes its target there, as in a chroot.
        File.CreateSymbolicLink(Path.Combine(Root, "etc/link"), Path.Combine(Outside, "hostname"));
        Directory.CreateDirectory(Path.Combine(Root, Outside.TrimStart('/')));
        using (var file = RootedFile.OpenWrite(Root, "/etc/link", (UnixFileMode)0b110_100_000, geteuid(), getegid()))
            file.Write("written\n"u8);
        Assert.Equal("outside\n", File.ReadAllText(Path.Combine(Outside, "hostname")));
        Assert.Equal("written\n", File.ReadAllText(Path.Combine(Root, Outside.TrimStart('/'), "hostname")));
        Assert.Equal((UnixFileMode)0b110_100_000, File.GetUnixFileMode(Path.Combine(Root, Outside.TrimStart('/'), "hostname")));
    }

    [Fact]
    public void A_write_replaces_the_content_and_sets_mode_and_owner()
    {
        using (var file = RootedFile.OpenWrite(Root, "/etc/hostname", (UnixFileMode)0b111_101_000, geteuid(), getegid()))
            file.Write("new\n"u8);
        Assert.Equal("new\n", File.ReadAllText(Path.Combine(Root, "etc/hostname")));
        var status = FileStatus.Of(Path.Combine(Root, "etc/hostname"))!;
        Assert.Equal((UnixFileMode)0b111_101_000, status.Permissions);
        Assert.Equal(geteuid(), status.Uid);
    }

    [Fact]
    public void A_fifo_or_a_folder_is_never_opened_as_a_file()
    {
        Assert.Equal(0, mkfifo(Path.Combine(Root, "fifo"), 0b110_110_110));
        // Opening a FIFO would block until a writer comes: refused before that.
        var read = Assert.Throws<IOException>(() => Read("/fifo"));
        Assert.Contains("not a regular file", read.Message);
        Assert.Throws<IOException>(() => RootedFile.OpenWrite(Root, "/fifo", (UnixFileMode)0b110_100_100, geteuid(), getegid()));
        Assert.Throws<IOException>(() => Read("/etc"));
    }

    [Fact]
    public void Folders_are_made_inside_the_root_and_a_symlink_to_one_outside_is_not_followed()
    {
        using var root = RootedFile.OpenRoot(Root);
        Assert.True(RootedFile.CreateDirectory(root, "/srv/a/b", (UnixFileMode)0b111_101_000, geteuid(), getegid()));
        Assert.False(RootedFile.CreateDirectory(root, "/srv/a", (UnixFileMode)0b111_111_111, geteuid(), getegid()));
        Assert.Equal((UnixFileMode)0b111_101_000, File.GetUnixFileMode(Path.Combine(Root, "srv/a/b")));
        Assert.Equal((UnixFileMode)0b111_101_000, File.GetUnixFileMode(Path.Combine(Root, "srv/a")));

        // A symlink to a folder: followed inside the root (where that folder exists too), never to the host's.
        File.CreateSymbolicLink(Path.Combine(Root, "srv/out"), Outside);
        Assert.ThrowsAny<IOException>(() => RootedFile.CreateDirectory(root, "/srv/out/made", (UnixFileMode)0b111_000_000, geteuid(), getegid()));
        Directory.CreateDirectory(Path.Combine(Root, Outside.TrimStart('/')));
        RootedFile.CreateDirectory(root, "/srv/out/made", (UnixFileMode)0b111_000_000, geteuid(), getegid());
        Assert.False(Directory.Exists(Path.Combine(Outside, "made")));
        Assert.True(Directory.Exists(Path.Combine(Root, Outside.TrimStart('/'), "made")));
    }
}
