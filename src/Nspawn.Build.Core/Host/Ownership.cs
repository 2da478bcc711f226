using System.Diagnostics;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// Under sudo the build runs as root, so what it writes in the user's tree (obj/, bin/, test results, logs)
/// would be root's. MSBuild cannot drop root for the build itself, so ownership is given back at the end,
/// to files that root created during this build inside folders the user owns, and to nothing else: the walk
/// goes by open folder and never follows a symlink, never crosses a mount, never enters the chroots folder,
/// and never touches a file with another link (which could be a file outside the tree).
/// </summary>
internal static class Ownership
{
    public static (uint Uid, uint Gid)? SudoUser =>
        Environment.IsPrivilegedProcess
        && uint.TryParse(Environment.GetEnvironmentVariable("SUDO_UID"), out var uid) && uid != 0
        && uint.TryParse(Environment.GetEnvironmentVariable("SUDO_GID"), out var gid)
            ? (uid, gid) : null;

    /// <summary>When this build began, as ctime counts (a copy keeps its source's mtime, not its ctime), with a second of slack.</summary>
    public static long BuildStart => new DateTimeOffset(Process.GetCurrentProcess().StartTime).ToUnixTimeSeconds() - 1;

    /// <summary>
    /// Under sudo, what the guests' root wrote in stopped machines' writable binds (folders of the user's) goes
    /// back to the user, at once rather than at the build's end. Never by the reaper: its sudo user may be another.
    /// </summary>
    public static void ReturnBinds((uint Uid, uint Gid)? user, IEnumerable<Machine> stopped, string? chrootsDir)
    {
        if (user is { } to && stopped.SelectMany(m => m.WritableBinds).Distinct().ToList() is { Count: > 0 } folders)
            ReturnTo(to, BuildStart, folders, chrootsDir, recursive: true);
    }

    /// <summary>Gives the files root created since <paramref name="since"/> under <paramref name="folders"/> (or directly in them) back to <paramref name="user"/>.</summary>
    public static void ReturnTo((uint Uid, uint Gid) user, long since, IEnumerable<string> folders, string? chrootsDir, bool recursive)
    {
        var chroots = chrootsDir is null ? null : FileStatus.Of(chrootsDir);
        foreach (var folder in folders.Select(f => System.IO.Path.GetFullPath(f).TrimEnd('/')).Distinct())
        {
            using var dir = TryOpenDirectory(folder, null);
            // A folder that is not the user's is never theirs to get back, nor is anything directly in it.
            if (dir is null || FileStatus.Of(dir) is not { } status || status.Uid != user.Uid)
                continue;
            new Walk(user.Uid, user.Gid, since, status.Device, chroots, recursive).Folder(dir);
        }
    }

    private sealed record Walk(uint Uid, uint Gid, long Since, ulong Device, FileStatus? Chroots, bool Recursive)
    {
        public void Folder(SafeFileHandle dir)
        {
            foreach (var name in Names(dir))
            {
                // An O_PATH handle pins the entry: what is checked is what is changed, even if it is renamed meanwhile.
                using var entry = TryOpen(name, dir, NativeFile.Path);
                if (entry is null || FileStatus.Of(entry) is not { } status || status.Device != Device || (Chroots is not null && status.IsSameAs(Chroots)))
                    continue;
                var ours = status.Uid == 0 && status.ChangeTime >= Since && (status.IsDirectory || status.Links == 1);
                if (ours)
                    NativeFile.Chown(entry, Uid, Gid);
                if (Recursive && status.IsDirectory && (ours || status.Uid == Uid))
                {
                    using var sub = TryOpenDirectory(name, dir);
                    if (sub is not null && FileStatus.Of(sub).IsSameAs(status))
                        Folder(sub);
                }
            }
        }
    }

    /// <summary>The names in an open folder: /proc/self/fd/N is that very folder, whatever its path has become.</summary>
    private static List<string> Names(SafeFileHandle dir)
    {
        try
        {
            return Directory.EnumerateFileSystemEntries($"/proc/self/fd/{dir.DangerousGetHandle()}").Select(System.IO.Path.GetFileName).OfType<string>().ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static SafeFileHandle? TryOpenDirectory(string path, SafeFileHandle? dir) =>
        TryOpen(path, dir, NativeFile.ReadOnly | NativeFile.Directory);

    private static SafeFileHandle? TryOpen(string path, SafeFileHandle? dir, int flags)
    {
        try
        {
            return NativeFile.Open(path, flags, dir);
        }
        catch (IOException)
        {
            // Gone, a symlink (not followed), or not a folder: nothing to give back there.
            return null;
        }
    }
}
