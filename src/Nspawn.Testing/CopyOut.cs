using System.Formats.Tar;
using Microsoft.Win32.SafeHandles;
using Nspawn.Build;

namespace Nspawn.Testing;

/// <summary>
/// Unpacks a tar stream made by a machine (so made by the guest: untrusted) into a host folder. Every path is
/// reached inside that folder without following any symlink (<see cref="RootedFile"/> with noSymlinks), so
/// nothing is written through a link; everything lands owned by the given user, without setuid or setgid bits;
/// device files, FIFOs, entries outside the copied tree and links that lead out of it are refused.
/// </summary>
internal static class CopyOut
{
    private const UnixFileMode Privileged = UnixFileMode.SetUser | UnixFileMode.SetGroup;

    /// <summary>Unpacks <paramref name="tar"/>, whose entries must all be <paramref name="top"/> or below it; throws IOException naming a refused entry.</summary>
    public static async Task ExtractAsync(Stream tar, SafeFileHandle root, string top, uint uid, uint gid, CancellationToken cancellationToken)
    {
        var folders = new List<(string Path, UnixFileMode Mode)>();
        var files = new HashSet<string>();
        var links = new List<(string Path, string Target)>();
        try
        {
            using var reader = new TarReader(tar, leaveOpen: true);
            while (await reader.GetNextEntryAsync(copyData: false, cancellationToken) is { } entry)
            {
                if (entry.EntryType is TarEntryType.GlobalExtendedAttributes)
                    continue;
                var parts = Parts(entry.Name, top);
                var path = string.Join('/', parts);
                var mode = entry.Mode & ~Privileged;
                if (parts.Length > 1)
                    RootedFile.CreateDirectory(root, string.Join('/', parts[..^1]), (UnixFileMode)0b111_101_101, uid, gid, noSymlinks: true);
                switch (entry.EntryType)
                {
                    case TarEntryType.Directory:
                        // Writable by us until its content is in; its own mode comes last (a folder that was there keeps its own).
                        if (RootedFile.CreateDirectory(root, path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, uid, gid, noSymlinks: true))
                            folders.Add((path, mode));
                        break;
                    case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                        await using (var file = RootedFile.OpenWrite(root, path, mode, uid, gid, noSymlinks: true))
                            if (entry.DataStream is { } data)
                                await data.CopyToAsync(file, cancellationToken);
                        files.Add(path);
                        break;
                    case TarEntryType.HardLink:
                        // A copy of the earlier file, so that the copy holds no hard links.
                        var linked = string.Join('/', Split(entry.LinkName));
                        if (entry.LinkName.StartsWith('/') || !files.Contains(linked))
                            throw new IOException($"'{entry.Name}' is a hard link to '{entry.LinkName}', which is not a file of the copy.");
                        await using (var source = RootedFile.OpenRead(root, linked, noSymlinks: true))
                        await using (var file = RootedFile.OpenWrite(root, path, mode, uid, gid, noSymlinks: true))
                            await source.CopyToAsync(file, cancellationToken);
                        files.Add(path);
                        break;
                    case TarEntryType.SymbolicLink:
                        if (!StaysInside(parts[..^1], entry.LinkName))
                            throw new IOException($"'{entry.Name}' is a symbolic link to '{entry.LinkName}', outside the copied tree.");
                        RootedFile.CreateSymbolicLink(root, path, entry.LinkName, uid, gid, noSymlinks: true);
                        links.Add((path, entry.LinkName));
                        break;
                    default:
                        throw new IOException($"'{entry.Name}' is a {entry.EntryType}, which is not copied out of a machine.");
                }
            }
        }
        catch
        {
            // The links made before the refused entry are checked too: none that leads out is left behind.
            RemoveLinksLeadingOut(root, top, links);
            throw;
        }
        if (RemoveLinksLeadingOut(root, top, links) is [var (link, target), ..])
            throw new IOException($"'{link}' is a symbolic link to '{target}', which leads outside the copied tree.");
        foreach (var (path, mode) in folders.OrderByDescending(f => f.Path.Length))
            RootedFile.SetDirectoryMode(root, path, mode, noSymlinks: true);
    }

    /// <summary>The entry's path as parts, which must start with <paramref name="top"/> and never climb.</summary>
    private static string[] Parts(string name, string top)
    {
        var parts = Split(name);
        if (name.StartsWith('/') || parts.Length == 0 || parts[0] != top || parts.Contains(".."))
            throw new IOException($"'{name}' is outside the copied tree '{top}'.");
        return parts;
    }

    private static string[] Split(string name) => name.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToArray();

    /// <summary>Whether a symlink in folder <paramref name="folder"/> pointing at <paramref name="target"/> stays inside the copied tree (its first part), read as text.</summary>
    private static bool StaysInside(string[] folder, string target)
    {
        if (target.StartsWith('/') || folder.Length == 0)
            return false;
        var depth = folder.Length;
        foreach (var part in target.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            depth += part switch { ".." => -1, "." => 0, _ => 1 };
            if (depth < 1)
                return false;
        }
        return true;
    }

    /// <summary>
    /// Removes the links that the kernel, following them from the copied tree's top folder, finds leading out of it
    /// or looping (read as text they can look inside: 'a/../x' leads out when 'a' is a link to '.'); returns them.
    /// </summary>
    private static List<(string Path, string Target)> RemoveLinksLeadingOut(SafeFileHandle root, string top, List<(string Path, string Target)> links)
    {
        if (links.Count == 0)
            return [];
        using var folder = RootedFile.OpenDirectory(root, top);
        var leading = links.Where(l => !RootedFile.StaysBeneath(folder, l.Path[(top.Length + 1)..])).ToList();
        foreach (var (path, _) in leading)
            RootedFile.RemoveSymbolicLink(root, path);
        return leading;
    }
}
