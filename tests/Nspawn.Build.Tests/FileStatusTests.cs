namespace Nspawn.Build.Tests;

[Trait("Category", "Unit")]
public sealed class FileStatusTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-stat-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_symlink_is_seen_as_one_and_never_followed()
    {
        var target = Directory.CreateDirectory(Path.Combine(_dir, "real")).FullName;
        var link = Path.Combine(_dir, "link");
        File.CreateSymbolicLink(link, target);
        var real = FileStatus.Of(target)!;
        var seen = FileStatus.Of(link)!;
        Assert.True(real.IsDirectory);
        Assert.True(seen.IsSymlink);
        Assert.False(seen.IsDirectory);
        Assert.False(seen.IsSameAs(real));
        Assert.Null(FileStatus.Of(Path.Combine(_dir, "missing")));
    }

    [Fact]
    public async Task A_file_reports_its_owner_links_and_device()
    {
        var file = Path.Combine(_dir, "f");
        File.WriteAllText(file, "12345");
        File.CreateSymbolicLink(Path.Combine(_dir, "s"), file);
        var status = FileStatus.Of(file)!;
        Assert.True(status.IsRegularFile);
        Assert.Equal(5, status.Size);
        Assert.Equal(1u, status.Links);
        Assert.Equal(FileStatus.Of(_dir)!.Uid, status.Uid);
        Assert.Equal(FileStatus.Of(_dir)!.Device, status.Device);
        using var handle = File.OpenHandle(file);
        Assert.True(FileStatus.Of(handle).IsSameAs(status));
        await Cli.Wrap("ln").WithArguments([file, Path.Combine(_dir, "h")]).ExecuteAsync();
        Assert.Equal(2u, FileStatus.Of(file)!.Links);
    }
}
