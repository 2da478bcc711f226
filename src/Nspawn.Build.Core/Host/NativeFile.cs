using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// File operations .NET has no way to make safely as root: opening without following a symlink, relative to
/// an open folder, or resolving a path inside a root folder as a chroot would (openat2 RESOLVE_IN_ROOT).
/// </summary>
internal static class NativeFile
{
    public const int AtFdCwd = -100;
    private const int AtEmptyPath = 0x1000;
    private const int ResolveNoMagicLinks = 0x02;
    private const int ResolveInRoot = 0x10;

    public const int ReadOnly = 0;
    public const int WriteOnly = 1;
    public const int ReadWrite = 2;
    public const int NonBlock = 0x800;
    public const int Create = 0x40;
    public const int Exclusive = 0x80;
    public const int Truncate = 0x200;
    public const int Path = 0x200000;
    private const int CloseOnExec = 0x80000;
    private const int AtRemoveDir = 0x200;
    // The two flags that differ between x86_64 and aarch64.
    public static readonly int Directory = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x4000 : 0x10000;
    public static readonly int NoFollow = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x8000 : 0x20000;

    [DllImport("libc", EntryPoint = "openat", SetLastError = true)]
    private static extern int OpenAt(int dirfd, string path, int flags, int mode);

    [DllImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static extern int Syscall(long number, int dirfd, string path, ref OpenHow how, nint size);

    [DllImport("libc", EntryPoint = "fchownat", SetLastError = true)]
    private static extern int FchownAt(int dirfd, string path, uint uid, uint gid, int flags);

    [DllImport("libc", EntryPoint = "mkdirat", SetLastError = true)]
    private static extern int MkdirAt(int dirfd, string path, int mode);

    [DllImport("libc", EntryPoint = "unlinkat", SetLastError = true)]
    private static extern int UnlinkAt(int dirfd, string path, int flags);

    [DllImport("libc", EntryPoint = "symlinkat", SetLastError = true)]
    private static extern int SymlinkAt(string target, int dirfd, string path);

    [DllImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static extern int Flock(int fd, int operation);

    [DllImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    private static extern int Fchmod(int fd, uint mode);

    [DllImport("libc", EntryPoint = "fremovexattr", SetLastError = true)]
    private static extern int Fremovexattr(int fd, string name);

    [DllImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static extern int Ioctl(int fd, ulong request, ref int arg);

    [DllImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static extern int Ioctl(int fd, ulong request, byte[] arg);

    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    /// <summary>Opens <paramref name="path"/> (relative to <paramref name="dir"/> when given) without following a symlink at its end.</summary>
    public static SafeFileHandle Open(string path, int flags, SafeFileHandle? dir = null, int mode = 0b110_000_000) =>
        Check(OpenAt(dir is null ? AtFdCwd : (int)dir.DangerousGetHandle(), path, flags | NoFollow | CloseOnExec, mode), path);

    /// <summary>
    /// Opens the regular file <paramref name="name"/> (relative to <paramref name="dir"/> when given) with <paramref name="flags"/>;
    /// null when it is not there or is anything else (a link, a FIFO, a device node), which is never opened: what is
    /// checked through an O_PATH handle is then reopened through that very handle.
    /// </summary>
    public static SafeFileHandle? OpenRegular(string name, int flags, SafeFileHandle? dir = null)
    {
        SafeFileHandle path;
        try
        {
            path = Open(name, Path, dir);
        }
        catch (IOException)
        {
            return null;
        }
        using (path)
        {
            if (FileStatus.Of(path) is not { IsRegularFile: true } status)
                return null;
            // O_NONBLOCK: a lease on the file fails the open instead of holding it.
            var file = Reopen(path, flags | NonBlock);
            if (FileStatus.Of(file).IsSameAs(status))
                return file;
            file.Dispose();
            return null;
        }
    }

    /// <summary>
    /// An O_PATH handle opened for real: /proc/self/fd/N is the very file, whatever its path has become. Only for what the
    /// caller checked is a regular file or a folder: opening anything else (a device node, a FIFO) does more than open it.
    /// </summary>
    public static SafeFileHandle Reopen(SafeFileHandle path, int flags) =>
        Check(OpenAt(AtFdCwd, $"/proc/self/fd/{path.DangerousGetHandle()}", flags | CloseOnExec, 0), $"/proc/self/fd/{path.DangerousGetHandle()}");

    /// <summary>The names in an open folder: /proc/self/fd/N is that very folder, whatever its path has become.</summary>
    public static List<string> Names(SafeFileHandle dir)
    {
        try
        {
            return System.IO.Directory.EnumerateFileSystemEntries($"/proc/self/fd/{dir.DangerousGetHandle()}").Select(System.IO.Path.GetFileName).OfType<string>().ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>
    /// Opens <paramref name="path"/> inside the folder <paramref name="root"/> as a process chrooted there would:
    /// '..' and every symlink, absolute or not, stay inside it.
    /// </summary>
    public static SafeFileHandle OpenInRoot(SafeFileHandle root, string path, int flags, int mode = 0b110_100_100)
    {
        var how = new OpenHow { Flags = (ulong)(flags | CloseOnExec), Mode = (flags & Create) != 0 ? (ulong)mode : 0, Resolve = ResolveInRoot | ResolveNoMagicLinks };
        var number = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 || RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 437
            : throw new PlatformNotSupportedException("openat2 is only wired for x86_64 and aarch64.");
        return Check(Syscall(number, (int)root.DangerousGetHandle(), path, ref how, Marshal.SizeOf<OpenHow>()), path);
    }

    /// <summary>
    /// A clone of the folder <paramref name="path"/> without the mounts in it (open_tree OPEN_TREE_CLONE, kernel 5.2):
    /// there a mount point is the plain folder again, and a file a mount hides can be reached.
    /// </summary>
    public static SafeFileHandle OpenTreeClone(string path) =>
        // open_tree(2) has no glibc wrapper before 2.36; its number is 428 on every architecture.
        Check((int)SyscallTree(428, AtFdCwd, path, 1 | CloseOnExec), path);

    [DllImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static extern long SyscallTree(long number, long dirfd, string path, long flags);

    /// <summary>Changes the owner of an open file (an O_PATH handle of a symlink changes the link itself).</summary>
    public static void Chown(SafeFileHandle file, uint uid, uint gid)
    {
        if (FchownAt((int)file.DangerousGetHandle(), "", uid, gid, AtEmptyPath) != 0)
            throw new IOException($"Could not change the owner of an open file: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>Makes the folder <paramref name="name"/> in <paramref name="dir"/>; false when it was there already.</summary>
    public static bool MakeDirectory(SafeFileHandle dir, string name, int mode = 0b111_101_101)
    {
        if (MkdirAt((int)dir.DangerousGetHandle(), name, mode) == 0)
            return true;
        return Marshal.GetLastPInvokeError() == 17 ? false : throw new IOException($"Could not make the folder '{name}': {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>Removes the entry <paramref name="name"/> of <paramref name="dir"/> (a file or a link, never what a link leads to), if there is one.</summary>
    public static void Unlink(SafeFileHandle dir, string name)
    {
        if (UnlinkAt((int)dir.DangerousGetHandle(), name, 0) != 0 && Marshal.GetLastPInvokeError() != 2)
            throw new IOException($"Could not remove '{name}': {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>Removes the empty folder <paramref name="name"/> of <paramref name="dir"/>, if there is one.</summary>
    public static void RemoveDirectory(SafeFileHandle dir, string name)
    {
        if (UnlinkAt((int)dir.DangerousGetHandle(), name, AtRemoveDir) != 0 && Marshal.GetLastPInvokeError() != 2)
            throw new IOException($"Could not remove the folder '{name}': {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>Sets the permissions of an open file (not an O_PATH handle).</summary>
    public static void ChangeMode(SafeFileHandle file, UnixFileMode mode)
    {
        if (Fchmod((int)file.DangerousGetHandle(), (uint)mode) != 0)
            throw new IOException($"Could not change the permissions of an open file: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>Removes an open file's capabilities (security.capability), which make a root of whoever runs it, if it has any.</summary>
    public static void RemoveCapabilities(SafeFileHandle file)
    {
        // ENODATA: none; EOPNOTSUPP: a file system without extended attributes has none either.
        if (Fremovexattr((int)file.DangerousGetHandle(), "security.capability") != 0 && Marshal.GetLastPInvokeError() is not (61 or 95))
            throw new IOException($"Could not remove the capabilities of an open file: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>
    /// Clears the immutable and append-only flags of an open file or folder (chattr -ia), under which neither its owner, its
    /// permissions nor (for a folder) its entries can change. A file system without such flags has none to clear.
    /// </summary>
    public static void ClearImmutable(SafeFileHandle file)
    {
        const ulong getFlags = 0x80086601, setFlags = 0x40086602; // FS_IOC_GETFLAGS, FS_IOC_SETFLAGS
        const int immutable = 0x10, appendOnly = 0x20;
        var flags = 0;
        if (Ioctl((int)file.DangerousGetHandle(), getFlags, ref flags) != 0 || (flags & (immutable | appendOnly)) == 0)
            return;
        flags &= ~(immutable | appendOnly);
        if (Ioctl((int)file.DangerousGetHandle(), setFlags, ref flags) != 0)
            throw new IOException($"Could not clear the immutable flag of an open file: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>
    /// Deletes the btrfs subvolume <paramref name="name"/> of <paramref name="dir"/> with all it holds (BTRFS_IOC_SNAP_DESTROY, what
    /// 'btrfs subvolume delete' does after resolving its path); false when it is no subvolume, or not on btrfs.
    /// </summary>
    public static bool DestroySubvolume(SafeFileHandle dir, string name)
    {
        // struct btrfs_ioctl_vol_args: __s64 fd; char name[4088]. _IOW(0x94, 15, 4096 bytes).
        var args = new byte[4096];
        var bytes = System.Text.Encoding.UTF8.GetBytes(name);
        if (bytes.Length >= args.Length - 8 || name.Contains('/'))
            return false;
        bytes.CopyTo(args, 8);
        return Ioctl((int)dir.DangerousGetHandle(), 0x5000940F, args) == 0;
    }

    /// <summary>
    /// Commits the btrfs file system of an open folder and wakes its cleaner (BTRFS_IOC_SYNC, 'btrfs filesystem sync'), which
    /// then frees deleted subvolumes at once; syncfs(2) commits without waking it.
    /// </summary>
    public static void SyncBtrfs(SafeFileHandle dir)
    {
        var unused = 0;
        Ioctl((int)dir.DangerousGetHandle(), 0x9408, ref unused);
    }

    /// <summary>
    /// The size btrfs uses of its device 1 (what 'btrfs filesystem show' prints as "devid 1 size"), from an open folder of
    /// the file system (BTRFS_IOC_DEV_INFO); null where the ioctl fails (not btrfs, no device 1).
    /// </summary>
    public static long? BtrfsDeviceSize(SafeFileHandle dir)
    {
        // struct btrfs_ioctl_dev_info_args (4096 bytes): __u64 devid (in); __u8 uuid[16]; __u64 bytes_used; __u64 total_bytes; ... _IOWR(0x94, 30, 4096 bytes).
        var args = new byte[4096];
        BitConverter.TryWriteBytes(args.AsSpan(0, 8), 1UL);
        return Ioctl((int)dir.DangerousGetHandle(), 0xD000941E, args) == 0 ? BitConverter.ToInt64(args, 32) : null;
    }

    /// <summary>Replaces the entry <paramref name="name"/> of <paramref name="dir"/> (not a folder) with a symlink to <paramref name="target"/>.</summary>
    public static void ReplaceWithSymlink(SafeFileHandle dir, string name, string target)
    {
        Unlink(dir, name);
        if (SymlinkAt(target, (int)dir.DangerousGetHandle(), name) != 0)
            throw new IOException($"Could not make the link '{name}': {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>Takes an exclusive flock lock without waiting (the lock .NET takes for FileShare.None); false when another holds it.</summary>
    public static bool TryLock(SafeFileHandle file) => Flock((int)file.DangerousGetHandle(), 2 | 4) == 0; // LOCK_EX | LOCK_NB

    /// <summary>A new file (or a truncated one of ours), never through a symlink at the end of the path.</summary>
    public static FileStream CreateNoFollow(string path, int mode = 0b110_100_100) =>
        new(Open(path, WriteOnly | Create | Truncate, mode: mode), FileAccess.Write);

    private static SafeFileHandle Check(int fd, string path) =>
        fd >= 0 ? new SafeFileHandle(fd, ownsHandle: true)
            : throw new IOException($"Could not open '{path}': {Marshal.GetLastPInvokeErrorMessage()}{(Marshal.GetLastPInvokeError() == 40 ? " (it is a symlink, which is not followed)" : "")}");
}
