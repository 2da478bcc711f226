using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// A POSIX access ACL that lets one more user in, written as the kernel's xattr (no setfacl on the host needed).
/// The other entries keep what the mode says, so nobody else gains anything.
/// </summary>
internal static class PosixAcl
{
    private const string AccessName = "system.posix_acl_access";
    private const uint Version = 2;
    private const ushort UserObj = 0x01, User = 0x02, GroupObj = 0x04, Mask = 0x10, Other = 0x20;
    private const uint Undefined = uint.MaxValue;

    [DllImport("libc", EntryPoint = "setxattr", SetLastError = true)]
    private static extern int SetXattr(string path, string name, byte[] value, nuint size, int flags);

    /// <summary>The ACL of a file of mode <paramref name="mode"/> that gives <paramref name="uid"/> the rights <paramref name="rights"/> (rwx as 4, 2, 1).</summary>
    internal static byte[] Encode(UnixFileMode mode, uint uid, int rights)
    {
        var bits = (int)mode;
        var (owner, group, other) = ((bits >> 6) & 7, (bits >> 3) & 7, bits & 7);
        (ushort Tag, int Perm, uint Id)[] entries =
            [(UserObj, owner, Undefined), (User, rights, uid), (GroupObj, group, Undefined), (Mask, group | rights, Undefined), (Other, other, Undefined)];
        var value = new byte[4 + entries.Length * 8];
        BinaryPrimitives.WriteUInt32LittleEndian(value, Version);
        for (var i = 0; i < entries.Length; i++)
        {
            var at = value.AsSpan(4 + i * 8);
            BinaryPrimitives.WriteUInt16LittleEndian(at, entries[i].Tag);
            BinaryPrimitives.WriteUInt16LittleEndian(at[2..], (ushort)entries[i].Perm);
            BinaryPrimitives.WriteUInt32LittleEndian(at[4..], entries[i].Id);
        }
        return value;
    }

    /// <summary>
    /// Gives <paramref name="uid"/> <paramref name="rights"/> on the very file held by <paramref name="file"/> (an O_PATH
    /// handle the caller checked): set through /proc/self/fd, so no path is looked up again.
    /// </summary>
    public static void Allow(SafeFileHandle file, uint uid, int rights)
    {
        var value = Encode(FileStatus.Of(file).Permissions, uid, rights);
        var path = $"/proc/self/fd/{file.DangerousGetHandle()}";
        if (SetXattr(path, AccessName, value, (nuint)value.Length, 0) != 0)
            throw new IOException($"Could not let user {uid} in: setting the ACL failed ({Marshal.GetLastPInvokeErrorMessage()}).");
    }
}
