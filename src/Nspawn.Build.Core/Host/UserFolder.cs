using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// A folder of a user's tree that the build writes in as root (saved logs, TRX attachments, the output folder), held
/// open. The user may change their tree at any time, so nothing in it goes by path: each folder below the user's chosen
/// root is made (mkdirat) and opened (O_NOFOLLOW) in the one above it, files are made (O_EXCL) and read (regular files
/// only) in the folder held, and under sudo what is made goes to the invoking user at once, by handle. A link or a FIFO
/// planted, or a folder swapped for a link meanwhile, is never followed, read or written through.
/// </summary>
internal sealed class UserFolder : IDisposable
{
    private readonly (uint Uid, uint Gid)? _owner;

    private UserFolder(SafeFileHandle handle, string path, IReadOnlyList<string> made, (uint Uid, uint Gid)? owner)
    {
        Handle = handle;
        Path = path;
        Made = made;
        _owner = owner;
    }

    public SafeFileHandle Handle { get; }

    public string Path { get; }

    /// <summary>The folders that were made, the outermost first.</summary>
    public IReadOnlyList<string> Made { get; }

    /// <summary>
    /// Makes <paramref name="dir"/>, a folder below <paramref name="root"/>, and those on the way, given to <paramref name="owner"/>.
    /// <paramref name="root"/> is the user's choice and may be, or be reached through, a link; below it a link is refused.
    /// </summary>
    public static UserFolder Make(string root, string dir, (uint Uid, uint Gid)? owner) => Walk(root, dir, owner, make: true)!;

    /// <summary>The folder <paramref name="dir"/> below <paramref name="root"/>; null when it is not there, or a link is on the way below root.</summary>
    public static UserFolder? TryOpen(string root, string dir) => Walk(root, dir, null, make: false);

    private static UserFolder? Walk(string root, string dir, (uint Uid, uint Gid)? owner, bool make)
    {
        root = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(root));
        dir = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(dir));
        if (!MountTable.IsUnder(dir, root))
            throw new ArgumentException($"'{dir}' is not below '{root}'.", nameof(dir));
        // What exists of the root is followed as the user named it ('/.' resolves a link at its end); its missing folders are made here, as those below it.
        var existing = root;
        if (make)
            while (existing != "/" && FileStatus.Of(existing) is null)
                existing = System.IO.Path.GetDirectoryName(existing)!;
        SafeFileHandle handle;
        try
        {
            handle = NativeFile.Open(existing + "/.", NativeFile.ReadOnly | NativeFile.Directory);
        }
        catch (IOException) when (!make)
        {
            return null;
        }
        var made = new List<string>();
        var path = existing;
        try
        {
            foreach (var part in System.IO.Path.GetRelativePath(existing, dir).Split('/').Where(p => p is not ("" or ".")))
            {
                path = System.IO.Path.Combine(path, part);
                var isNew = make && NativeFile.MakeDirectory(handle, part);
                SafeFileHandle next;
                try
                {
                    next = NativeFile.Open(part, NativeFile.ReadOnly | NativeFile.Directory, handle);
                }
                catch (IOException) when (!make)
                {
                    return null;
                }
                catch (IOException)
                {
                    throw new NspawnException(ErrorCodes.HostFileFailed, $"'{path}' is a link or a file, not a folder: it was left as it is. Remove it, then run the build again.");
                }
                handle.Dispose();
                handle = next;
                if (!isNew)
                    continue;
                made.Add(path);
                // Only what root made: a folder of another swapped in meanwhile is not given to anyone.
                if (owner is { } to && FileStatus.Of(handle).Uid == 0)
                    NativeFile.Chown(handle, to.Uid, to.Gid);
            }
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        return new UserFolder(handle, dir, made, owner);
    }

    /// <summary>A new file: whatever is there (a file, or a link, which is not followed) is removed first; never opened through anything planted meanwhile (O_EXCL).</summary>
    public FileStream Create(string name)
    {
        NativeFile.Unlink(Handle, name);
        var file = NativeFile.Open(name, NativeFile.WriteOnly | NativeFile.Create | NativeFile.Exclusive, Handle, 0b110_100_100);
        try
        {
            if (_owner is { } to)
                NativeFile.Chown(file, to.Uid, to.Gid);
        }
        catch
        {
            file.Dispose();
            throw;
        }
        return new FileStream(file, FileAccess.Write);
    }

    /// <summary>The regular file <paramref name="name"/> to read; null when there is none (a link, a FIFO are never opened).</summary>
    public FileStream? OpenRead(string name) =>
        NativeFile.OpenRegular(name, NativeFile.ReadOnly, Handle) is { } file ? new FileStream(file, FileAccess.Read) : null;

    /// <summary>Whether <paramref name="name"/> is a regular file.</summary>
    public bool HasFile(string name) => FileStatus.Of(Handle, name) is { IsRegularFile: true };

    /// <summary>Removes <paramref name="name"/> (a file, or a link itself), if it is there.</summary>
    public void Remove(string name) => NativeFile.Unlink(Handle, name);

    public void Dispose() => Handle.Dispose();
}
