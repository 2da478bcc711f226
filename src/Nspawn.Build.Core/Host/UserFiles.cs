using System.Runtime.InteropServices;

namespace Nspawn.Build;

/// <summary>
/// What the build writes as root into a user's tree below a folder the user chose (saved logs in the test
/// results folder): folders and files are made without following a link we did not make, and under sudo
/// they go to the invoking user at once (lchown), without waiting for the end of the build.
/// </summary>
internal static class UserFiles
{
    [DllImport("libc", EntryPoint = "lchown", SetLastError = true)]
    private static extern int LChown(string path, uint owner, uint group);

    /// <summary>
    /// Makes <paramref name="dir"/>, a folder below <paramref name="root"/>, and those on the way. <paramref name="root"/> is
    /// the user's choice and may be a link; below it a link is refused. Returns the folders it made, the outermost first.
    /// </summary>
    public static IReadOnlyList<string> CreateDirectory(string root, string dir)
    {
        root = Path.GetFullPath(root).TrimEnd('/');
        dir = Path.GetFullPath(dir).TrimEnd('/');
        if (!MountTable.IsUnder(dir, root))
            throw new ArgumentException($"'{dir}' is not below '{root}'.", nameof(dir));
        var made = new List<string>();
        for (var missing = root; !Directory.Exists(missing) && missing != "/"; missing = Path.GetDirectoryName(missing)!)
            made.Insert(0, missing);
        Directory.CreateDirectory(root);
        var path = root;
        foreach (var part in Path.GetRelativePath(root, dir).Split('/').Where(p => p is not ("" or ".")))
        {
            path = Path.Combine(path, part);
            var info = new DirectoryInfo(path);
            if (info.LinkTarget is not null || (File.Exists(path) && !info.Exists))
                throw new NspawnException(ErrorCodes.HostFileFailed, $"'{path}' is a link or a file, not a folder: it was left as it is. Remove it, then run the build again.");
            if (!info.Exists)
            {
                info.Create();
                made.Add(path);
            }
        }
        return made;
    }

    /// <summary>A new file: whatever is at <paramref name="path"/> (a file, or a link, which is not followed) is removed first.</summary>
    public static FileStream Create(string path)
    {
        File.Delete(path);
        return new FileStream(path, FileMode.CreateNew, FileAccess.Write);
    }

    /// <summary>Under sudo, gives the paths (not where a link points) to the invoking user.</summary>
    public static void GiveToSudoUser(IEnumerable<string> paths)
    {
        if (Ownership.SudoUser is not { } user)
            return;
        foreach (var path in paths)
            if (LChown(path, user.Uid, user.Gid) != 0)
                throw new NspawnException(ErrorCodes.HostFileFailed, $"Could not give '{path}' to the invoking user (errno {Marshal.GetLastPInvokeError()}).");
    }
}
