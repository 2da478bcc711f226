using System.Security.Cryptography;
using System.Text;
using NuGet.Versioning;

namespace Nspawn.Build;

/// <summary>
/// The versions of tools that earlier builds read, kept in a folder of root's, each under the identity of the binary it
/// was read from (its final path, device, inode, size, change and modify times): `systemd-nspawn --version` cost every
/// build 15 to 20 ms before its first step. A binary replaced or changed (an upgrade) is another identity, read again.
/// </summary>
/// <param name="dir">Where they are kept: root's state folder, or a test's own.</param>
internal sealed class ToolVersions(string dir)
{
    public static ToolVersions Default { get; } = new("/run/nspawn-build/tools");

    /// <summary>The version read from the binary at <paramref name="path"/> before, as it is now; null when not known.</summary>
    public NuGetVersion? Known(string path)
    {
        if (!Privilege.IsRoot || Identity(path) is not { } identity)
            return null;
        try
        {
            var lines = File.ReadAllLines(EntryOf(identity));
            return lines.Length == 2 && lines[0] == identity && NuGetVersion.TryParse(lines[1], out var version) ? version : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Keeps what the binary at <paramref name="path"/> said; a build that cannot (not root) asks each time.</summary>
    public void Remember(string path, NuGetVersion version)
    {
        if (!Privilege.IsRoot || Identity(path) is not { } identity)
            return;
        try
        {
            Directory.CreateDirectory(dir);
            // Whole or not at all: another build may read it at the same moment.
            var entry = EntryOf(identity);
            var temp = $"{entry}.{Environment.ProcessId}.tmp";
            File.WriteAllText(temp, $"{identity}\n{version.ToNormalizedString()}\n");
            File.Move(temp, entry, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only a cache: the next build asks the tool again.
        }
    }

    private string EntryOf(string identity) => Path.Combine(dir, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(identity)))[..32]);

    /// <summary>What the binary is now: a link is followed to the file it names, which is what runs.</summary>
    private static string? Identity(string path)
    {
        try
        {
            var real = File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path);
            return FileStatus.Of(real) is { IsRegularFile: true } s
                ? $"{real}\0{s.Device}\0{s.Inode}\0{s.Size}\0{s.ChangeTime}\0{s.ModifyTime.Ticks}"
                : null;
        }
        catch (IOException)
        {
            // Gone, or a loop of links: nothing to know it by.
            return null;
        }
    }
}
