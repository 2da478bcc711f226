using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// An image folder, opened once, in which every path is resolved as a process chrooted there would resolve
/// it: '..' and every symlink (absolute ones too, such as /etc/localtime or /var/run) stay inside the image,
/// so that no write meant for an image lands on the host.
/// </summary>
internal sealed class ImageRoot : IDisposable
{
    private readonly SafeFileHandle _root;

    private ImageRoot(SafeFileHandle root) => _root = root;

    /// <summary>The image folder itself must be a real folder, not a symlink.</summary>
    public static ImageRoot Open(string imageDir) => new(NativeFile.Open(imageDir, NativeFile.ReadOnly | NativeFile.Directory));

    /// <summary>The file's text, or null when there is no such file.</summary>
    public string? ReadAllText(string path)
    {
        SafeFileHandle file;
        try
        {
            file = NativeFile.OpenInRoot(_root, path, NativeFile.ReadOnly);
        }
        catch (IOException)
        {
            return null;
        }
        using var stream = new FileStream(file, FileAccess.Read);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>When the file was last written, or null when there is no such file.</summary>
    public DateTime? LastWriteTimeUtc(string path)
    {
        try
        {
            using var file = NativeFile.OpenInRoot(_root, path, NativeFile.ReadOnly);
            return File.GetLastWriteTimeUtc(file);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Writes a file of ours (hostname, stamp) as a new regular file: whatever was there, a link included, is replaced, not followed.</summary>
    public void ReplaceFile(string path, string text)
    {
        using var parent = NativeFile.OpenInRoot(_root, Path.GetDirectoryName(path) ?? "/", NativeFile.ReadOnly | NativeFile.Directory);
        NativeFile.Unlink(parent, Path.GetFileName(path));
        using var stream = new FileStream(NativeFile.Open(Path.GetFileName(path), NativeFile.WriteOnly | NativeFile.Create | NativeFile.Exclusive, parent, 0b110_100_100), FileAccess.Write);
        stream.Write(System.Text.Encoding.UTF8.GetBytes(text));
    }

    /// <summary>Copies a host file to <paramref name="path"/> in the image with the host file's mode, making the folders on the way.</summary>
    public void CopyFrom(string hostFile, string path)
    {
        CreateDirectories(Path.GetDirectoryName(path) ?? "/");
        using var source = File.OpenRead(hostFile);
        using var target = Create(path, File.GetUnixFileMode(source.SafeFileHandle));
        source.CopyTo(target);
        File.SetUnixFileMode(target.SafeFileHandle, File.GetUnixFileMode(source.SafeFileHandle));
    }

    /// <summary>Makes each missing folder of <paramref name="path"/> (mode 0755), resolving the existing ones inside the image.</summary>
    public void CreateDirectories(string path)
    {
        var done = "/";
        foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            using (var parent = NativeFile.OpenInRoot(_root, done, NativeFile.ReadOnly | NativeFile.Directory))
                NativeFile.MakeDirectory(parent, part);
            done = Path.Combine(done, part);
        }
    }

    /// <summary>Replaces <paramref name="path"/> (a file or a link, not a folder) with a symlink, as 'systemctl mask' does.</summary>
    public void ReplaceWithSymlink(string path, string target)
    {
        CreateDirectories(Path.GetDirectoryName(path) ?? "/");
        using var parent = NativeFile.OpenInRoot(_root, Path.GetDirectoryName(path) ?? "/", NativeFile.ReadOnly | NativeFile.Directory);
        NativeFile.ReplaceWithSymlink(parent, Path.GetFileName(path), target);
    }

    private FileStream Create(string path, UnixFileMode mode) =>
        new(NativeFile.OpenInRoot(_root, path, NativeFile.WriteOnly | NativeFile.Create | NativeFile.Truncate, (int)mode), FileAccess.Write);

    public void Dispose() => _root.Dispose();
}
