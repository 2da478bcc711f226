using System.Runtime.InteropServices;

namespace Nspawn.Build;

/// <summary>
/// The file system identity of the calling thread (setfsuid/setfsgid act on one thread only): a guest's files in a
/// user namespace are reached through an idmapped mount, where host root is no user at all, so files are made there
/// as the guest's root (its host UID). Use it on a thread of its own, with no await inside.
/// </summary>
internal sealed class FsIdentity : IDisposable
{
    [DllImport("libc", EntryPoint = "setfsuid")]
    private static extern int SetFsUid(uint uid);

    [DllImport("libc", EntryPoint = "setfsgid")]
    private static extern int SetFsGid(uint gid);

    private readonly uint _uid;
    private readonly uint _gid;

    private FsIdentity(uint uid, uint gid) => (_uid, _gid) = (uid, gid);

    /// <summary>Acts as <paramref name="uid"/> and <paramref name="gid"/> on files until disposed (then as before).</summary>
    public static FsIdentity As(uint uid, uint gid)
    {
        // Each call returns the identity it replaced.
        var previousGid = (uint)SetFsGid(gid);
        var previousUid = (uint)SetFsUid(uid);
        return new FsIdentity(previousUid, previousGid);
    }

    public void Dispose()
    {
        SetFsUid(_uid);
        SetFsGid(_gid);
    }
}
