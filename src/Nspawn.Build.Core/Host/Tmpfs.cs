using System.Runtime.InteropServices;

namespace Nspawn.Build;

/// <summary>
/// A tmpfs of a set size on a folder of ours, through mount(2) (no tool, no shell), and its unmount. What a guest can
/// write on the host goes there: it fills its own small file system, never the host's /run.
/// </summary>
internal static class Tmpfs
{
    private const nuint NoSuid = 2;
    private const nuint NoDev = 4;
    private const nuint NoExec = 8;
    private const int Detach = 2;
    private const int NoFollow = 8;

    [DllImport("libc", EntryPoint = "mount", SetLastError = true)]
    private static extern int MountCall(string source, string target, string type, nuint flags, string data);

    [DllImport("libc", EntryPoint = "umount2", SetLastError = true)]
    private static extern int Umount2(string target, int flags);

    /// <summary>
    /// Mounts on <paramref name="dir"/> a tmpfs of at most <paramref name="size"/> bytes and <paramref name="inodes"/>
    /// files (its root among them), nosuid, nodev and noexec, whose root is 0700 and owned by uid and gid <paramref name="owner"/>.
    /// </summary>
    public static void Mount(string dir, long size, int inodes, uint owner)
    {
        var data = $"size={size},nr_inodes={inodes},mode=0700,uid={owner},gid={owner}";
        if (MountCall("tmpfs", dir, "tmpfs", NoSuid | NoDev | NoExec, data) != 0)
            throw new IOException($"Could not mount a tmpfs on '{dir}': {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>Detaches the mount on <paramref name="dir"/> (as umount --lazy: files still open there keep it until closed), never through a link.</summary>
    public static void Unmount(string dir)
    {
        if (Umount2(dir, Detach | NoFollow) != 0)
            throw new IOException($"Could not unmount '{dir}': {Marshal.GetLastPInvokeErrorMessage()}");
    }
}
