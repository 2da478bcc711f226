using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// The loop file behind a mounted btrfs, and growing it in place. The default loop file sits in the folder it
/// is mounted on, so the mount hides it: it is reached through a detached, non-recursive clone of the folder
/// above (open_tree), which shows that folder as it is on disk, without what is mounted in it. The file is
/// opened without following a symlink (the folder may be writable by a user before it is mounted), and only
/// when it is the very file (device and inode) the loop device reads.
/// </summary>
internal static class LoopFile
{
    /// <summary>A loop device with a btrfs of ours: its device node and its capacity in bytes.</summary>
    public sealed record Device(string Node, long Capacity);

    /// <summary>The loop device of the btrfs mounted on <paramref name="dir"/>, and the file it reads; null where none is mounted there.</summary>
    public static (Device Device, string File)? MountedOn(string dir)
    {
        var mountPoint = Path.GetFullPath(dir).TrimEnd('/');
        var mount = MountTable.Read().LastOrDefault(m => m.MountPoint == mountPoint);
        if (mount is not { FsType: "btrfs" } || !mount.Source.StartsWith("/dev/loop", StringComparison.Ordinal))
            return null;
        var backing = Path.Combine("/sys/block", Path.GetFileName(mount.Source), "loop/backing_file");
        return File.Exists(backing) ? (new Device(mount.Source, Capacity(mount.Source)), File.ReadAllText(backing).TrimEnd('\n')) : null;
    }

    /// <summary>The loop device of the btrfs mounted on <paramref name="dir"/> when it reads <paramref name="file"/>; null otherwise.</summary>
    public static Device? MountedOn(string dir, string file) =>
        MountedOn(dir) is { } loop && loop.File == Path.GetFullPath(file) ? loop.Device : null;

    /// <summary>The size the loop device shows (the file's size when it was set up or last re-read).</summary>
    public static long Capacity(string node) =>
        long.Parse(File.ReadAllText(Path.Combine("/sys/block", Path.GetFileName(node), "size")).Trim(), CultureInfo.InvariantCulture) * 512;

    /// <summary>
    /// Makes <paramref name="file"/> <paramref name="size"/> bytes long (sparse: the new part takes no disk until
    /// btrfs writes to it); never shorter. <paramref name="hiddenBy"/> is the folder mounted over the file's own
    /// folder (then it is reached from the folder above), and <paramref name="device"/> the loop device that must
    /// be reading it. Returns the file's length before.
    /// </summary>
    public static async Task<long> ExtendAsync(string file, long size, string? hiddenBy, Device? device, CancellationToken cancellationToken)
    {
        using var handle = OpenNoFollow(file, hiddenBy);
        var status = FileStatus.Of(handle);
        var (inode, dev) = (status.Inode, $"{status.Device >> 32}:{status.Device & 0xffffffff}");
        if (!status.IsRegularFile)
            throw new NspawnException(ErrorCodes.BtrfsFailed, $"NspawnBtrfsImageFile '{file}' is not a regular file: it was not grown.");
        if (device is not null && await BackingFileAsync(device.Node, cancellationToken) is var (backingInode, backingDev) && (backingInode != inode || backingDev != dev))
            throw new NspawnException(ErrorCodes.BtrfsFailed,
                $"'{file}' is not the file that {device.Node} reads (it was replaced while mounted): it was not grown. Run NspawnUnmount, check the file, and build again.");
        var before = RandomAccess.GetLength(handle);
        if (before < size)
            RandomAccess.SetLength(handle, size);
        return before;
    }

    /// <summary>Tells the loop device to re-read its file's size (losetup -c).</summary>
    public static Task SetCapacityAsync(Device device, CancellationToken cancellationToken) =>
        HostCommand.RunCheckedAsync(ToolLocator.Require(Tool.Losetup), ["-c", device.Node], ErrorCodes.BtrfsFailed, cancellationToken);

    private static SafeFileHandle OpenNoFollow(string file, string? hiddenBy)
    {
        try
        {
            if (hiddenBy is null)
                return NativeFile.Open(file, NativeFile.WriteOnly);
            // A clone of the folder above the mount point, without the mounts in it: there the mount point is the plain folder again.
            var above = Path.GetDirectoryName(Path.GetFullPath(hiddenBy).TrimEnd('/')) ?? "/";
            using var tree = NativeFile.OpenTreeClone(above);
            return NativeFile.Open(Path.GetRelativePath(above, Path.GetFullPath(file)), NativeFile.WriteOnly, tree);
        }
        catch (IOException e)
        {
            throw new NspawnException(ErrorCodes.BtrfsFailed, $"Could not open '{file}' to grow the btrfs loop file (a symlink is never followed): {e.Message}."
                + (hiddenBy is null ? "" : " The kernel may be older than 5.2: run NspawnUnmount, then build again (the file grows before it is mounted)."));
        }
    }

    /// <summary>The inode and the device ("major:minor") of the file a loop device reads, as losetup reports them.</summary>
    private static async Task<(ulong Inode, string Dev)?> BackingFileAsync(string node, CancellationToken cancellationToken)
    {
        var output = await HostCommand.RunCheckedAsync(ToolLocator.Require(Tool.Losetup), ["--list", "--json", "--output", "NAME,BACK-INO,BACK-MAJ:MIN", node],
            ErrorCodes.BtrfsFailed, cancellationToken);
        var device = JsonDocument.Parse(output).RootElement.GetProperty("loopdevices").EnumerateArray().FirstOrDefault();
        if (device.ValueKind != JsonValueKind.Object)
            return null;
        var inode = device.GetProperty("back-ino");
        return (inode.ValueKind == JsonValueKind.Number ? inode.GetUInt64() : ulong.Parse(inode.GetString()!.Trim(), CultureInfo.InvariantCulture),
            device.GetProperty("back-maj:min").GetString()!.Trim());
    }
}
