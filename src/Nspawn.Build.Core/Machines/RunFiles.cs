namespace Nspawn.Build;

/// <summary>
/// Where a build's machines file and run settings live: a folder of root's under /run, named after the build
/// process, never in the user's tree (obj/), where a planted symlink could turn root's write into another file.
/// Readable by all: under sudo the tests read them as the user.
/// </summary>
internal static class RunFiles
{
    public static string Root => Path.Combine(MachineLauncher.StateDir, "runs");

    internal const UnixFileMode Readable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>A new folder for this build's files.</summary>
    public static string Create()
    {
        var pid = Environment.ProcessId;
        Directory.CreateDirectory(Root, Readable);
        var dir = Path.Combine(Root, $"{pid}-{ProcessInfo.StartTime(pid) ?? 0}-{Guid.NewGuid():N}"[..^24]);
        Directory.CreateDirectory(dir, Readable);
        return dir;
    }

    /// <summary>Writes a new file in a folder of <see cref="Create"/>.</summary>
    public static string Write(string dir, string name, Action<Stream> write)
    {
        var path = Path.Combine(dir, name);
        using var file = new FileStream(NativeFile.Open(path, NativeFile.WriteOnly | NativeFile.Create | NativeFile.Exclusive, mode: 0b110_100_100), FileAccess.Write);
        write(file);
        return path;
    }

    /// <summary>Removes a folder of <see cref="Create"/> with its files.</summary>
    public static void Remove(string dir)
    {
        if (Path.GetDirectoryName(Path.GetFullPath(dir)) == Root && FileStatus.Of(dir) is { IsDirectory: true })
            Directory.Delete(dir, recursive: true);
    }

    /// <summary>The folders whose build is gone (killed): the reaper removes them.</summary>
    public static IEnumerable<string> Stale()
    {
        if (!Directory.Exists(Root))
            yield break;
        foreach (var dir in Directory.EnumerateDirectories(Root))
        {
            var parts = Path.GetFileName(dir).Split('-');
            if (parts.Length == 3 && int.TryParse(parts[0], out var pid) && ulong.TryParse(parts[1], out var start) && !ProcessInfo.IsRunning(pid, start))
                yield return dir;
        }
    }
}
