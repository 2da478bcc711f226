using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Testing.Agent;

/// <summary>The few calls .NET lacks: open without blocking on a FIFO, a bare read, the file type of an open file, chown, kill.</summary>
internal static class Native
{
    public const int ReadOnly = 0;
    public const int WriteOnly = 1;
    public const int Create = 0x40;
    public const int Truncate = 0x200;
    private const int NoCtty = 0x100;
    private const int NonBlock = 0x800;
    private const int CloseOnExec = 0x80000;
    private const int AtEmptyPath = 0x1000;

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int OpenRaw(string path, int flags, int mode);

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(SafeHandle dirfd, string path, int flags, uint mask, byte[] buffer);

    [DllImport("libc", EntryPoint = "fchown", SetLastError = true)]
    private static extern int Fchown(SafeHandle fd, uint uid, uint gid);

    [DllImport("libc", EntryPoint = "read", SetLastError = true)]
    private static extern nint ReadRaw(SafeHandle fd, ref byte buffer, nint count);

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static extern int Kill(int pid, int signal);

    /// <summary>Opens a file without waiting on a FIFO's writer; the caller checks that it is a regular file.</summary>
    public static SafeFileHandle Open(string path, int flags, int mode = 0)
    {
        var fd = OpenRaw(path, flags | NoCtty | NonBlock | CloseOnExec, mode);
        if (fd >= 0)
            return new SafeFileHandle(fd, ownsHandle: true);
        var errno = Marshal.GetLastPInvokeError();
        var message = $"{path}: {Marshal.GetPInvokeErrorMessage(errno)}";
        throw errno is 2 or 20 ? new FileNotFoundException(message, path) : new IOException(message);
    }

    /// <summary>One read(2) from where the file is: a small file of the kernel's (cgroupfs) in one call, without .NET's stat and lock.</summary>
    public static int Read(SafeFileHandle file, Span<byte> buffer)
    {
        var n = ReadRaw(file, ref MemoryMarshal.GetReference(buffer), buffer.Length);
        return n >= 0 ? (int)n : throw new IOException($"read failed: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    public static bool IsRegularFile(SafeFileHandle file)
    {
        var buffer = new byte[256];
        if (Statx(file, "", AtEmptyPath, 1, buffer) != 0)
            throw new IOException($"statx failed: {Marshal.GetLastPInvokeErrorMessage()}");
        return (BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(28)) & 0xf000) == 0x8000;
    }

    public static void Chown(SafeFileHandle file, uint uid, uint gid)
    {
        if (Fchown(file, uid, gid) != 0)
            throw new IOException($"fchown failed: {Marshal.GetLastPInvokeErrorMessage()}");
    }
}
