using System.Diagnostics;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// Under sudo the build runs as root, so what it writes in the user's tree (obj/, bin/, test results, logs)
/// would be root's. MSBuild cannot drop root for the build itself, so ownership is given back at the end,
/// to files that root created during this build inside folders the user owns, and to nothing else: the walk
/// goes by open folder and never follows a symlink, never crosses a mount, never enters the chroots folder,
/// never gives a file with another link (which could be a file outside the tree), nor a device node.
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
    /// What the guests' root wrote in stopped machines' writable binds goes back to the user (under sudo; else the folder's
    /// owner), at once rather than at the build's end, made harmless first (<see cref="BindGiveBack"/>).
    /// Never by the reaper: its sudo user may be another.
    /// </summary>
    public static void ReturnBinds((uint Uid, uint Gid)? user, IEnumerable<Machine> stopped, string? chrootsDir) =>
        ReturnBinds(user, stopped, chrootsDir, BuildStart);

    /// <summary><see cref="ReturnBinds(ValueTuple{uint, uint}?, IEnumerable{Machine}, string?)"/> for what changed since <paramref name="since"/> (machines an earlier build started).</summary>
    public static void ReturnBinds((uint Uid, uint Gid)? user, IEnumerable<Machine> stopped, string? chrootsDir, long since)
    {
        foreach (var folder in stopped.SelectMany(m => m.WritableBinds).Distinct())
        {
            // Without sudo the folder's owner is the user: what the guest left is still made harmless (no device, no set-id bit).
            var to = user ?? (FileStatus.Of(folder) is { IsDirectory: true } owner ? (owner.Uid, owner.Gid) : null);
            if (to is { } giveTo)
                ReturnTo(giveTo, since, [folder], chrootsDir, recursive: true, guest: true);
        }
    }

    /// <summary>
    /// Gives the files root created since <paramref name="since"/> under <paramref name="folders"/> (or directly in them) back to <paramref name="user"/>.
    /// With <paramref name="guest"/> (writable binds), what changed since then is made harmless first, in every folder below, the user's or not.
    /// What could not be given or made harmless is said at the end, in an IOException, once all the rest was.
    /// </summary>
    public static void ReturnTo((uint Uid, uint Gid) user, long since, IEnumerable<string> folders, string? chrootsDir, bool recursive, bool guest = false)
    {
        var chroots = chrootsDir is null ? null : FileStatus.Of(chrootsDir);
        var problems = new List<string>();
        foreach (var folder in folders.Select(f => System.IO.Path.GetFullPath(f).TrimEnd('/')).Distinct())
        {
            using var dir = TryOpenDirectory(folder, null);
            // A folder that is not the user's is never theirs to get back, nor is anything directly in it.
            if (dir is null || FileStatus.Of(dir) is not { } status || status.Uid != user.Uid)
                continue;
            var walk = new Walk(user.Uid, user.Gid, since, status.Device, chroots, recursive, Give: true, guest, problems);
            if (guest && status.ChangeTime >= since)
                walk.Try(folder, () => BindGiveBack.Unlock(dir));
            walk.Folder(dir, folder);
        }
        if (problems.Count > 0)
            throw new IOException($"Some files could not be given back to the invoking user: {string.Join("; ", problems)}");
    }

    private sealed record Walk(uint Uid, uint Gid, long Since, ulong Device, FileStatus? Chroots, bool Recursive, bool Give, bool Guest, List<string> Problems)
    {
        public void Folder(SafeFileHandle dir, string path)
        {
            foreach (var name in NativeFile.Names(dir))
            {
                // An O_PATH handle pins the entry: what is checked is what is changed, even if it is renamed meanwhile.
                using var entry = TryOpen(name, dir, NativeFile.Path);
                if (entry is null || FileStatus.Of(entry) is not { } status || status.Device != Device || (Chroots is not null && status.IsSameAs(Chroots)))
                    continue;
                var full = System.IO.Path.Combine(path, name);
                Try(full, () => Entry(dir, name, full, entry, status));
            }
        }

        private void Entry(SafeFileHandle dir, string name, string path, SafeFileHandle entry, FileStatus status)
        {
            var changed = status.ChangeTime >= Since;
            if (Guest && changed && !BindGiveBack.Disarm(dir, name, entry, status))
                return;
            // A device node is never handed to a user: it would be their way to the device.
            var ours = Give && status.Uid == 0 && changed && !status.IsDevice && (status.IsDirectory || status.Links == 1);
            if (!status.IsDirectory)
            {
                if (ours)
                    NativeFile.Chown(entry, Uid, Gid);
                return;
            }
            // In a bind every folder is looked into: the guest may have hidden a file in a folder of any owner, which the user can still reach.
            if (!ours && !(Recursive && (status.Uid == Uid || Guest)))
                return;
            using var sub = TryOpenDirectory(name, dir);
            if (sub is null || !FileStatus.Of(sub).IsSameAs(status))
                return;
            if (Guest && changed)
                BindGiveBack.Unlock(sub);
            if (ours)
                NativeFile.Chown(sub, Uid, Gid);
            // What is in a folder of another owner is not the user's to get (only made harmless).
            if (Recursive)
                (this with { Give = ours || status.Uid == Uid }).Folder(sub, path);
        }

        /// <summary>An entry that fails is said at the end: the others are still given back and made harmless.</summary>
        public void Try(string path, Action action)
        {
            try
            {
                action();
            }
            catch (IOException e)
            {
                Problems.Add($"'{path}': {e.Message}");
            }
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
