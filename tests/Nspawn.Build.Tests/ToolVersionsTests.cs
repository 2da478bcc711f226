using NuGet.Versioning;
using Xunit;

namespace Nspawn.Build.Tests;

/// <summary>
/// The tools' versions kept between builds: read again whenever the binary is not the one they were read from (rewritten,
/// replaced, a link pointed elsewhere), and an entry that does not name the binary as it is now is never believed.
/// </summary>
[Trait("Category", "Unit")]
public sealed class ToolVersionsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-tools-").FullName;
    private readonly ToolVersions _versions;
    private readonly string _tool;

    public ToolVersionsTests()
    {
        _versions = new ToolVersions(Path.Combine(_dir, "cache"));
        _tool = Write("tool", "#!/bin/sh\necho 'tool 252'\n");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_version_is_known_until_the_binary_changes()
    {
        Assert.Null(_versions.Known(_tool));
        _versions.Remember(_tool, NuGetVersion.Parse("252.0.0"));
        Assert.Equal("252.0.0", _versions.Known(_tool)?.ToNormalizedString());
        Assert.Equal("252.0.0", new ToolVersions(Path.Combine(_dir, "cache")).Known(_tool)?.ToNormalizedString());

        // Rewritten in place (same inode): its size and times differ.
        File.WriteAllText(_tool, "#!/bin/sh\necho 'tool 232 old'\n");
        Assert.Null(_versions.Known(_tool));

        // Replaced by another file, as a package upgrade does (a new inode under the same name).
        _versions.Remember(_tool, NuGetVersion.Parse("252.0.0"));
        var other = Write("other", "#!/bin/sh\necho 'tool 232 old'\n");
        File.Move(other, _tool, overwrite: true);
        Assert.Null(_versions.Known(_tool));
    }

    [Fact]
    public void A_link_counts_as_the_file_it_names()
    {
        var link = Path.Combine(_dir, "link");
        File.CreateSymbolicLink(link, _tool);
        _versions.Remember(link, NuGetVersion.Parse("252.0.0"));
        Assert.Equal("252.0.0", _versions.Known(_tool)?.ToNormalizedString());

        // The link pointed at another binary: that one was never asked.
        var other = Write("other", "#!/bin/sh\necho 'tool 232'\n");
        File.Delete(link);
        File.CreateSymbolicLink(link, other);
        Assert.Null(_versions.Known(link));
    }

    [Fact]
    public void An_entry_that_does_not_name_the_binary_as_it_is_is_not_believed()
    {
        _versions.Remember(_tool, NuGetVersion.Parse("252.0.0"));
        var entry = Assert.Single(Directory.GetFiles(Path.Combine(_dir, "cache")));
        var lines = File.ReadAllLines(entry);
        File.WriteAllText(entry, "some other binary\n999\n");
        Assert.Null(_versions.Known(_tool));
        File.WriteAllText(entry, $"{lines[0]}\nnot a version\n");
        Assert.Null(_versions.Known(_tool));
        File.WriteAllText(entry, $"{lines[0]}\n252\nmore\n");
        Assert.Null(_versions.Known(_tool));
        Assert.Null(_versions.Known(Path.Combine(_dir, "missing")));
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        return path;
    }
}
