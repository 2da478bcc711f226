using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// Files inside a root folder (an image, a machine's /proc/PID/root, the target of a copy), resolved as a
/// chroot would: '..' and symlinks, absolute or relative, never lead out of the root, and /proc's magic
/// links are refused (openat2 with RESOLVE_IN_ROOT, Linux 5.6). Only regular files are opened, so that a
/// device node or a FIFO put in place of a file is never opened, let alone written. With noSymlinks, no
/// symlink at all is followed and '..' is refused (RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH): for a root that
/// is the host's, where a link made by someone else must never be followed.
/// </summary>
internal static class RootedFile
{
    private const int OpenAtSyscall = 437; // openat2: the same number on every architecture
    private const ulong ResolveNoMagicLinks = 0x02;
    private const ulong ResolveNoSymlinks = 0x04;
    private const ulong ResolveBeneath = 0x08;
    private const ulong ResolveInRoot = 0x10;
    private const int OWrOnly = 0x1;
    private const int OCreat = 0x40;
    private const int ONoCtty = 0x100;
    private const int OTrunc = 0x200;
    private const int ONonBlock = 0x800;
    private const int OCloExec = 0x80000;
    private const int OPath = 0x200000;
    private const int AtSymlinkNoFollow = 0x100;
    private const int ELoop = 40;

    // O_DIRECTORY and O_NOFOLLOW differ between architectures.
    private static readonly bool ArmLike = RuntimeInformation.ProcessArchitecture is Architecture.Arm or Architecture.Arm64 or Architecture.Armv6 or Architecture.Ppc64le;
    private static readonly int ODirectory = ArmLike ? 0x4000 : 0x10000;
    private static readonly int ONoFollow = ArmLike ? 0x8000 : 0x20000;

    /// <summary>The root folder, held open so that every later path is resolved in the same one.</summary>
    public static SafeFileHandle OpenRoot(string dir) =>
        Opened(open(dir, OPath | ODirectory | OCloExec, 0), dir);

    public static FileStream OpenRead(string root, string path)
    {
        using var r = OpenRoot(root);
        return OpenRead(r, path);
    }

    /// <summary>A regular file of the root, for reading; anything else at <paramref name="path"/> is an IOException.</summary>
    public static FileStream OpenRead(SafeFileHandle root, string path, bool noSymlinks = false)
    {
        using var file = Resolve(root, path, OPath, noSymlinks);
        RequireRegular(file, path);
        return new FileStream(Reopen(file, 0, path), FileAccess.Read);
    }

    public static FileStream OpenWrite(string root, string path, UnixFileMode mode, uint uid, uint gid)
    {
        using var r = OpenRoot(root);
        return OpenWrite(r, path, mode, uid, gid);
    }

    /// <summary>
    /// A regular file of the root, emptied (or made) for writing, with this owner and mode. Its folder must
    /// exist; anything but a regular file at <paramref name="path"/> is an IOException.
    /// </summary>
    /// <remarks>
    /// <paramref name="createAs"/>: the host UID that makes a new file, for a machine's root seen through an idmapped mount
    /// (a user namespace), where host root maps to no user and could not make one.
    /// </remarks>
    public static FileStream OpenWrite(SafeFileHandle root, string path, UnixFileMode mode, uint uid, uint gid, bool noSymlinks = false, uint? createAs = null)
    {
        SafeFileHandle handle;
        if (TryResolve(root, path, OPath, noSymlinks) is { } existing)
            using (existing)
            {
                RequireRegular(existing, path);
                handle = Reopen(existing, OWrOnly | OTrunc, path);
            }
        else
        {
            // Made (through a dangling symlink too, inside the root, unless noSymlinks); what appeared there meanwhile is checked before a byte is written.
            using (createAs is { } creator ? FsIdentity.As(creator, creator) : null)
                handle = Resolve(root, path, OWrOnly | OCreat | ONoCtty | ONonBlock, noSymlinks, 0b110_000_000);
            try
            {
                RequireRegular(handle, path);
                Check(ftruncate(handle, 0), path);
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }
        try
        {
            // The owner first: chown clears the setuid and setgid bits that the mode may set.
            Check(fchown(handle, uid, gid), path);
            Check(fchmod(handle, (uint)mode), path);
            return new FileStream(handle, FileAccess.Write);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Makes each missing folder of <paramref name="path"/> with this owner and mode; folders that exist are
    /// left as they are. True when the last one was made here.
    /// </summary>
    public static bool CreateDirectory(SafeFileHandle root, string path, UnixFileMode mode, uint uid, uint gid, bool noSymlinks = false, uint? createAs = null)
    {
        var parts = Parts(path);
        var made = false;
        for (var i = 1; i <= parts.Length; i++)
        {
            var sub = string.Join('/', parts[..i]);
            using (var existing = TryResolve(root, sub, OPath | ODirectory, noSymlinks))
                if (existing is not null)
                {
                    made = false;
                    continue;
                }
            using var parent = Resolve(root, string.Join('/', parts[..(i - 1)]), OPath | ODirectory, noSymlinks);
            int result;
            using (createAs is { } creator ? FsIdentity.As(creator, creator) : null)
                result = mkdirat(parent, parts[i - 1], 0b111_000_000);
            if (result != 0)
                throw Error(sub);
            using var dir = Opened(openat(parent, parts[i - 1], ODirectory | ONoFollow | OCloExec, 0), sub);
            Check(fchown(dir, uid, gid), sub);
            Check(fchmod(dir, (uint)mode), sub);
            made = true;
        }
        return made;
    }

    /// <summary>Sets the mode of a folder of the root (after its content was written, for folders that the owner may not write).</summary>
    public static void SetDirectoryMode(SafeFileHandle root, string path, UnixFileMode mode, bool noSymlinks = false)
    {
        using var dir = Resolve(root, path, ODirectory, noSymlinks);
        Check(fchmod(dir, (uint)mode), path);
    }

    /// <summary>Makes a symlink (never followed here) with this owner; its folder must exist.</summary>
    public static void CreateSymbolicLink(SafeFileHandle root, string path, string target, uint uid, uint gid, bool noSymlinks = false)
    {
        var parts = Parts(path);
        using var parent = Resolve(root, string.Join('/', parts[..^1]), OPath | ODirectory, noSymlinks);
        if (symlinkat(target, parent, parts[^1]) != 0)
            throw Error(path);
        Check(fchownat(parent, parts[^1], uid, gid, AtSymlinkNoFollow), path);
    }

    /// <summary>Removes the symlink at <paramref name="path"/> (never what it leads to), reached without following any symlink.</summary>
    public static void RemoveSymbolicLink(SafeFileHandle root, string path)
    {
        var parts = Parts(path);
        using var parent = Resolve(root, string.Join('/', parts[..^1]), OPath | ODirectory, noSymlinks: true);
        if (FileStatus.Of(parent, parts[^1]) is not { IsSymlink: true })
            throw new IOException($"'{path}' is not a symbolic link.");
        Check(unlinkat(parent, parts[^1], 0), path);
    }

    /// <summary>A folder of the root, reached without following any symlink, to resolve paths beneath it.</summary>
    public static SafeFileHandle OpenDirectory(SafeFileHandle root, string path) => Resolve(root, path, OPath | ODirectory, noSymlinks: true);

    /// <summary>
    /// Whether <paramref name="path"/>, every symlink on it followed by the kernel, stays beneath
    /// <paramref name="folder"/> (RESOLVE_BENEATH): true when it does or leads nowhere (a dangling link),
    /// false when it leads out, loops or cannot be followed for another reason.
    /// </summary>
    public static bool StaysBeneath(SafeFileHandle folder, string path)
    {
        var how = new OpenHow { Flags = (ulong)(OPath | OCloExec), Resolve = ResolveBeneath | ResolveNoMagicLinks };
        var fd = (int)syscall(OpenAtSyscall, folder, path, ref how, (nuint)Marshal.SizeOf<OpenHow>());
        if (fd >= 0)
        {
            new SafeFileHandle(fd, ownsHandle: true).Dispose();
            return true;
        }
        return Marshal.GetLastPInvokeError() is 2 or 20; // ENOENT, ENOTDIR; EXDEV is out, ELOOP a loop
    }

    private static string[] Parts(string path)
    {
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts.Any(p => p is "." or ".."))
            throw new ArgumentException($"'{path}' is not a path below the root.", nameof(path));
        return parts;
    }

    private static void RequireRegular(SafeFileHandle file, string path)
    {
        if (!FileStatus.Of(file).IsRegularFile)
            throw new IOException($"'{path}' is not a regular file.");
    }

    /// <summary>A second open of the file an O_PATH handle holds: the same inode, whatever has changed at its path since.</summary>
    private static SafeFileHandle Reopen(SafeFileHandle file, int flags, string path) =>
        Opened(open($"/proc/self/fd/{file.DangerousGetHandle()}", flags | ONoCtty | OCloExec, 0), path);

    private static SafeFileHandle Resolve(SafeFileHandle root, string path, int flags, bool noSymlinks = false, uint mode = 0) =>
        TryResolve(root, path, flags, noSymlinks, mode) ?? throw new FileNotFoundException($"'{path}' does not exist.", path);

    /// <summary>openat2 in the root; null when the path does not exist, an IOException for any other failure.</summary>
    private static SafeFileHandle? TryResolve(SafeFileHandle root, string path, int flags, bool noSymlinks, uint mode = 0)
    {
        var resolve = noSymlinks ? ResolveBeneath | ResolveNoSymlinks : ResolveInRoot | ResolveNoMagicLinks;
        var how = new OpenHow { Flags = (ulong)(flags | OCloExec), Mode = mode, Resolve = resolve };
        var relative = path.TrimStart('/');
        var fd = (int)syscall(OpenAtSyscall, root, relative.Length == 0 ? "." : relative, ref how, (nuint)Marshal.SizeOf<OpenHow>());
        if (fd >= 0)
            return new SafeFileHandle(fd, ownsHandle: true);
        if (Marshal.GetLastPInvokeError() is 2 or 20) // ENOENT, ENOTDIR
            return null;
        if (noSymlinks && Marshal.GetLastPInvokeError() == ELoop)
            throw new IOException($"'{path}' is or goes through a symbolic link, which is not followed here.", ELoop);
        throw Error(path);
    }

    private static SafeFileHandle Opened(int fd, string path) => fd >= 0 ? new SafeFileHandle(fd, ownsHandle: true) : throw Error(path);

    private static void Check(int result, string path)
    {
        if (result != 0)
            throw Error(path);
    }

    private static IOException Error(string path)
    {
        var errno = Marshal.GetLastPInvokeError();
        var message = $"'{path}': {Marshal.GetPInvokeErrorMessage(errno)}";
        return errno == 2 ? new FileNotFoundException(message, path) : new IOException(message, errno);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    [DllImport("libc", SetLastError = true)] private static extern long syscall(long number, SafeFileHandle dirfd, string path, ref OpenHow how, nuint size);
    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags, uint mode);
    [DllImport("libc", SetLastError = true)] private static extern int openat(SafeFileHandle dirfd, string path, int flags, uint mode);
    [DllImport("libc", SetLastError = true)] private static extern int mkdirat(SafeFileHandle dirfd, string path, uint mode);
    [DllImport("libc", SetLastError = true)] private static extern int symlinkat(string target, SafeFileHandle dirfd, string path);
    [DllImport("libc", SetLastError = true)] private static extern int fchown(SafeFileHandle fd, uint uid, uint gid);
    [DllImport("libc", SetLastError = true)] private static extern int fchownat(SafeFileHandle dirfd, string path, uint uid, uint gid, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int fchmod(SafeFileHandle fd, uint mode);
    [DllImport("libc", SetLastError = true)] private static extern int unlinkat(SafeFileHandle dirfd, string path, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int ftruncate(SafeFileHandle fd, long length);
}
