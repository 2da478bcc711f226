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

    public static bool IsHeld(string path)
    {
        SafeFileHandle handle;
        try
        {
            // FileShare.None takes flock(LOCK_EX | LOCK_NB): it fails while another process holds a flock lock.
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        }
        catch (FileNotFoundException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
        using (handle)
        {
            var flock = new Flock { Type = FWrlck };
            return Fcntl(handle, FOfdGetlk, ref flock) == 0 && flock.Type != FUnlck;
        }
    }
}
