using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// A loop device set up on an open file (the LOOP_CONFIGURE ioctl; LOOP_SET_FD before kernel 5.8), never on a path:
/// the device reads the very file that was opened and checked, whatever its path names by then. losetup and mount -o
/// loop open the path again (even /proc/self/fd/N, which they resolve to a path first). Set up with autoclear: the
/// device goes with its last user, so disposing this once the file system on it is mounted leaves it to the mount,
/// and disposing it before (the mount failed) frees it.
/// </summary>
internal sealed class LoopAttachment : IDisposable
{
    private const string Control = "/dev/loop-control";
    private const nuint CtlGetFree = 0x4C82;
    private const nuint Configure = 0x4C0A;
    private const nuint SetFd = 0x4C00;
    private const nuint ClearFd = 0x4C01;
    private const nuint SetStatus64 = 0x4C04;
    private const uint AutoClear = 4;
    private const int Busy = 16;
    private const int Invalid = 22;
    private const int NotTty = 25;
    // struct loop_config: fd, block_size, then struct loop_info64 (232 bytes: lo_flags at 52, lo_file_name[64] at 56), then 64 reserved bytes.
    private const int InfoAt = 8;
    private const int InfoSize = 232;
    private const int FlagsAt = InfoAt + 52;
    private const int NameAt = InfoAt + 56;
    private const int NameSize = 64;
    private const int ConfigSize = InfoAt + InfoSize + 64;

    private readonly SafeFileHandle _device;

    private LoopAttachment(string node, SafeFileHandle device) => (Node, _device) = (node, device);

    /// <summary>The device node, such as /dev/loop3.</summary>
    public string Node { get; }

    [DllImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static extern int Ioctl(SafeFileHandle fd, nuint request, byte[] argument);

    [DllImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static extern int Ioctl(SafeFileHandle fd, nuint request, nint argument);

    /// <summary>A free loop device reading <paramref name="file"/> (open read-write); <paramref name="name"/> is what losetup shows for it.</summary>
    public static LoopAttachment Attach(SafeFileHandle file, string name)
    {
        using var control = NativeFile.Open(Control, NativeFile.ReadWrite);
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var number = Ioctl(control, CtlGetFree, 0);
            if (number < 0)
                throw Failure("find a free loop device");
            var node = $"/dev/loop{number}";
            var device = NativeFile.Open(node, NativeFile.ReadWrite);
            try
            {
                if (TryConfigure(device, file, name))
                    return new LoopAttachment(node, device);
            }
            catch
            {
                device.Dispose();
                throw;
            }
            // Another process took it between the two calls: the next free one.
            device.Dispose();
        }
        throw new IOException("Could not set up a loop device: each free one was taken by another process first.");
    }

    public void Dispose() => _device.Dispose();

    /// <summary>Sets the device up on the file; false when another process set it up first.</summary>
    private static bool TryConfigure(SafeFileHandle device, SafeFileHandle file, string name)
    {
        var config = new byte[ConfigSize];
        var fd = (int)file.DangerousGetHandle();
        BitConverter.TryWriteBytes(config.AsSpan(0, 4), fd);
        BitConverter.TryWriteBytes(config.AsSpan(FlagsAt, 4), AutoClear);
        var bytes = Encoding.UTF8.GetBytes(name);
        bytes.AsSpan(0, Math.Min(bytes.Length, NameSize - 1)).CopyTo(config.AsSpan(NameAt));
        if (Ioctl(device, Configure, config) == 0)
            return true;
        var errno = Marshal.GetLastPInvokeError();
        if (errno == Busy)
            return false;
        if (errno != Invalid && errno != NotTty)
            throw Failure("set up a loop device");
        // Before kernel 5.8: the file, then its settings.
        if (Ioctl(device, SetFd, fd) != 0)
            return Marshal.GetLastPInvokeError() == Busy ? false : throw Failure("set up a loop device");
        if (Ioctl(device, SetStatus64, config[InfoAt..(InfoAt + InfoSize)]) != 0)
        {
            var failure = Failure("set up a loop device");
            Ioctl(device, ClearFd, 0);
            throw failure;
        }
        return true;
    }

    private static IOException Failure(string what) => new($"Could not {what}: {Marshal.GetLastPInvokeErrorMessage()}");
}
