namespace Nspawn.Build.Tests;

/// <summary>
/// The ACL that lets the sudo user reach an up machine's agent: real folders of root's, entered with the file system
/// identity of a user (no root's rights on files), before and after; another user stays out. Needs root.
/// </summary>
public sealed class PosixAclTests : IDisposable
{
    private const uint User = 4242;
    private const uint Other = 4343;
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-acl-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    [Trait("Category", "Unit")]
    public void The_entry_gives_the_user_its_rights_and_keeps_the_mode_for_everyone_else()
    {
        var acl = PosixAcl.Encode((UnixFileMode)0b111_000_000, User, 1);
        // Version, then user::rwx, user:4242:--x, group::---, mask::--x, other::---.
        Assert.Equal(
            [2, 0, 0, 0, 1, 0, 7, 0, 255, 255, 255, 255, 2, 0, 1, 0, 0x92, 0x10, 0, 0, 4, 0, 0, 0, 255, 255, 255, 255, 0x10, 0, 1, 0, 255, 255, 255, 255, 0x20, 0, 0, 0, 255, 255, 255, 255],
            acl);
    }

    [Fact]
    public async Task Only_the_user_let_in_passes_a_root_only_folder()
    {
        var inner = Directory.CreateDirectory(Path.Combine(_dir, "inner"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute).FullName;
        File.SetUnixFileMode(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(Path.Combine(inner, "file"), "x");
        Assert.False(await CanStatAsync(User, Path.Combine(inner, "file")));

        foreach (var dir in new[] { _dir, inner })
            using (var handle = NativeFile.Open(dir, NativeFile.Path | NativeFile.Directory))
                PosixAcl.Allow(handle, User, 1);

        Assert.True(await CanStatAsync(User, Path.Combine(inner, "file")));
        Assert.False(await CanStatAsync(Other, Path.Combine(inner, "file")));
        // The mode still says root only for group and others.
        Assert.Equal(0u, (uint)File.GetUnixFileMode(inner) & 0b000_000_111);
    }

    /// <summary>Whether <paramref name="uid"/> reaches <paramref name="path"/>: on a thread of its own, whose file system identity it takes.</summary>
    private static Task<bool> CanStatAsync(uint uid, string path)
    {
        var result = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            bool reached;
            using (FsIdentity.As(uid, uid))
            {
                try
                {
                    reached = FileStatus.Of(path) is not null;
                }
                catch (IOException)
                {
                    reached = false; // EACCES on the way
                }
            }
            result.SetResult(reached);
        });
        thread.Start();
        return result.Task;
    }
}
