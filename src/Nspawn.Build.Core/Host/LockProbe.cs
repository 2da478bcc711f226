using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// Whether some process holds a lock on a file. nspawn locks '.#.#machine.*.lck' with an open file
/// description (OFD) lock while its snapshot is in use; our own locks are flock locks (FileShare.None).
/// A lock dies with its process, so a lock file that nobody holds marks a leftover.
/// </summary>
internal static class LockProbe
{
    private const int FOfdGetlk = 36;
    private const short FWrlck = 1;
    private const short FUnlck = 2;

    // struct flock on 64-bit Linux (x86_64, aarch64): l_type, l_whence, l_start, l_len, l_pid.
    [StructLayout(LayoutKind.Sequential)]
    private struct Flock
    {
        public short Type;
        public short Whence;
        public long Start;
        public long Len;
        public int Pid;
    }

    [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static extern int Fcntl(SafeFileHandle fd, int cmd, ref Flock flock);

    /// <summary>
    /// Whether the lock file <paramref name="name"/> (in <paramref name="dir"/> when given) is held. One that is not a regular file
    /// (a link, a FIFO put in a store the user may write) is never opened, and counts as held: nothing is removed for it.
    /// </summary>
    public static bool IsHeld(string name, SafeFileHandle? dir = null)
    {
        var status = dir is null ? FileStatus.Of(name) : FileStatus.Of(dir, name);
        if (status is null)
            return false;
        SafeFileHandle? handle;
        try
        {
            handle = status.IsRegularFile ? NativeFile.OpenRegular(name, NativeFile.ReadWrite, dir) : null;
        }
        catch (IOException)
        {
            return true;
        }
        if (handle is null)
            return true;
        using (handle)
        {
            // flock(LOCK_EX | LOCK_NB), which FileShare.None takes: it fails while another process holds a flock lock.
            if (!NativeFile.TryLock(handle))
                return true;
            var flock = new Flock { Type = FWrlck };
            return Fcntl(handle, FOfdGetlk, ref flock) == 0 && flock.Type != FUnlck;
        }
    }
}
