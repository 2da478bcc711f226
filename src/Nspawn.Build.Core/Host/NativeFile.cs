using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// File operations .NET has no way to make safely as root: opening without following a symlink, relative to
/// an open folder, or resolving a path inside a root folder as a chroot would (openat2 RESOLVE_IN_ROOT).
/// </summary>
internal static class NativeFile
{
    private const int AtFdCwd = -100;
    private const int AtEmptyPath = 0x1000;
    private const int ResolveNoMagicLinks = 0x02;
    private const int ResolveInRoot = 0x10;

    public const int ReadOnly = 0;
    public const int WriteOnly = 1;
    public const int ReadWrite = 2;
    public const int Create = 0x40;
    public const int Exclusive = 0x80;
    public const int Truncate = 0x200;
    public const int Path = 0x200000;
    private const int CloseOnExec = 0x80000;
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
