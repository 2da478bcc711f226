using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// A read-only view of an image folder whose files show as owned from a machine's UID shift on (an idmapped bind
/// mount), for overlay machines in a user namespace: nspawn cannot map an overlay itself, but it can lay its
/// overlay on a lower folder that is mapped already. The image stays root's on disk and is never written.
/// </summary>
internal static class IdmappedMount
{
    private const uint MountAttrReadOnly = 0x1;
    private const uint MountAttrIdmap = 0x100000;
    private const int AtEmptyPath = 0x1000;
    private const int MoveMountFromEmptyPath = 0x4;

    [StructLayout(LayoutKind.Sequential)]
    private struct MountAttr
    {
        public ulong AttrSet;
        public ulong AttrClear;
        public ulong Propagation;
        public ulong UsernsFd;
    }

    [DllImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static extern long MountSetattr(long number, int dirfd, string path, uint flags, ref MountAttr attr, nuint size);

    [DllImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static extern long MoveMount(long number, int fromDirfd, string fromPath, int toDirfd, string toPath, uint flags);

    public static string Dir => Path.Combine(MachineLauncher.StateDir, "idmapped");

    public static string PathOf(string machineName) => Path.Combine(Dir, machineName);

    /// <summary>Mounts <paramref name="imageDir"/> read-only at <see cref="PathOf"/>, its UIDs and GIDs 0 to 65535 shown from <paramref name="shift"/> on.</summary>
    public static async Task<string> CreateAsync(string imageDir, string machineName, uint shift, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(MachineLauncher.StateDir);
        Directory.CreateDirectory(Dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var target = PathOf(machineName);
        Directory.CreateDirectory(target);
        // nspawn locks the folder it boots (here the mapped view), not the image: this record says the image is in use.
        File.WriteAllText(ImageRecordOf(machineName), Path.GetFullPath(imageDir));
        using var userns = await MappedUserNamespace.OpenAsync(shift, cancellationToken);
        using var tree = NativeFile.OpenTreeClone(imageDir);
        var attr = new MountAttr { AttrSet = MountAttrIdmap | MountAttrReadOnly, UsernsFd = (ulong)userns.DangerousGetHandle() };
        // mount_setattr is 442 and move_mount 429 on every architecture.
        if (MountSetattr(442, (int)tree.DangerousGetHandle(), "", AtEmptyPath, ref attr, (nuint)Marshal.SizeOf<MountAttr>()) != 0)
            throw new NspawnException(ErrorCodes.NoPrivateUsers,
                $"Overlay machines of image '{imageDir}' cannot run in a user namespace: its file system has no idmapped mounts ({Marshal.GetLastPInvokeErrorMessage()}). "
                + "Use snapshot machines (NspawnEphemeralMode=snapshot), move the chroots folder to a file system that has them (ext4, xfs, btrfs on Linux 5.15 or later), "
                + "or, only for trusted images and tests, set NspawnPrivateUsers=false (unsafe: the guest's root is then the host's root).");
        if (MoveMount(429, (int)tree.DangerousGetHandle(), "", NativeFile.AtFdCwd, target, MoveMountFromEmptyPath) != 0)
            throw new IOException($"Could not mount the mapped image at '{target}': {Marshal.GetLastPInvokeErrorMessage()}");
        return target;
    }

    /// <summary>Unmounts and removes a machine's mapped image, if it has one (never through a link).</summary>
    public static void Remove(string machineName)
    {
        var target = PathOf(machineName);
        while (IsMounted(target))
            Tmpfs.Unmount(target);
        if (FileStatus.Of(target) is { IsDirectory: true })
            Directory.Delete(target);
        // No folder at all where no overlay machine ever ran in a user namespace.
        if (File.Exists(ImageRecordOf(machineName)))
            File.Delete(ImageRecordOf(machineName));
    }

    /// <summary>Whether an overlay machine runs from <paramref name="imageDir"/>, or from the image of that name it had when it started.</summary>
    public static bool Maps(string imageDir) =>
        Leftovers().Any(m => IsMounted(PathOf(m)) && ReadRecord(m) == Path.GetFullPath(imageDir));

    private static string ImageRecordOf(string machineName) => PathOf(machineName) + ".image";

    private static string? ReadRecord(string machineName)
    {
        try
        {
            return File.ReadAllText(ImageRecordOf(machineName));
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Machines whose mapped image is still there.</summary>
    public static IEnumerable<string> Leftovers() =>
        Directory.Exists(Dir) ? Directory.EnumerateDirectories(Dir).Select(Path.GetFileName).OfType<string>() : [];

    private static bool IsMounted(string path) => MountTable.Read().Any(m => m.MountPoint == path);
}
