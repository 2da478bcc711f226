using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// What statx(2) says of a file, never following a symlink at the end of the path: the checks that .NET's
/// FileInfo cannot make (device, inode, link count, owner, change time), and whether a path is a real folder.
/// </summary>
internal sealed record FileStatus(UnixFileMode Permissions, uint Type, uint Uid, uint Gid, uint Links, ulong Inode, ulong Device, long ChangeTime, long Size)
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtEmptyPath = 0x1000;
    private const uint BasicStats = 0x7ff;
    private const uint MountIdStat = 0x1000;
    private const uint TypeMask = 0xf000;

    public bool IsDirectory => Type == 0x4000;
    public bool IsRegularFile => Type == 0x8000;
    public bool IsSymlink => Type == 0xa000;

    /// <summary>A block or character device node: whoever may open it reaches the device (a disk, memory).</summary>
    public bool IsDevice => Type is 0x6000 or 0x2000;

    /// <summary>The mount the file is on (statx's mnt_id): btrfs gives every subvolume a device of its own, but they share their mount.</summary>
    public ulong MountId { get; init; }

    /// <summary>When its content last changed (UTC).</summary>
    public DateTime ModifyTime { get; init; }

    /// <summary>The same file system object (device and inode).</summary>
    public bool IsSameAs(FileStatus other) => Device == other.Device && Inode == other.Inode;

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int dirfd, string path, int flags, uint mask, byte[] buffer);

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(SafeHandle dirfd, string path, int flags, uint mask, byte[] buffer);

    /// <summary>The file at <paramref name="path"/> itself (a symlink is reported as one); null when there is none.</summary>
    public static FileStatus? Of(string path) => Parse(buffer => Statx(AtFdCwd, path, AtSymlinkNoFollow, BasicStats | MountIdStat, buffer));

    /// <summary>The entry <paramref name="name"/> of an open folder, not following a symlink; null when there is none.</summary>
    public static FileStatus? Of(SafeHandle directory, string name) => Parse(buffer => Statx(directory, name, AtSymlinkNoFollow, BasicStats | MountIdStat, buffer));

    /// <summary>The open file itself.</summary>
    public static FileStatus Of(SafeFileHandle file) =>
        Parse(buffer => Statx(file, "", AtEmptyPath, BasicStats | MountIdStat, buffer)) ?? throw new IOException($"statx failed: {Marshal.GetLastPInvokeErrorMessage()}");

    private static FileStatus? Parse(Func<byte[], int> call)
    {
        var b = new byte[256];
        if (call(b) != 0)
            return Marshal.GetLastPInvokeError() is 2 or 20 ? null // ENOENT, ENOTDIR
                : throw new IOException($"statx failed: {Marshal.GetLastPInvokeErrorMessage()}");
        var mode = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(28));
        var device = ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(136)) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(140));
        return new FileStatus((UnixFileMode)(mode & 0xfff), mode & TypeMask,
            Uid: BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(20)), Gid: BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(24)),
            Links: BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(16)), Inode: BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(32)),
            Device: device, ChangeTime: BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(96)), Size: BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(40)))
        {
            MountId = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(144)),
            ModifyTime = DateTime.UnixEpoch.AddSeconds(BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(112))).AddTicks(BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(120)) / 100),
        };
    }
}
