namespace Nspawn.Build;

/// <summary>
/// Every name we make up, in one place: machine names, and the hidden folders and locks next to an image
/// ('.#NAME.KIND-xxxx'), which the reaper recognises and removes when nobody holds their build lock.
/// </summary>
internal static class TempNames
{
    /// <summary>The kinds of an image's temporary folders: being built, replaced, received from or sent to the cache.</summary>
    public static readonly string[] ImageKinds = [".new-", ".old-", ".recv-", ".send-"];

    // 8 hex digits of a random GUID: unique enough for the machines of one host, short enough for a host name.
    public static string Machine(string logicalName) => $"nspawn-{logicalName}-{Random8()}";

    /// <summary>A private network's bridge: the fixed prefix the README names, and room for '-254' after it (15 characters at most).</summary>
    public static string Bridge() => $"{BridgePrefix}{Random8()[..6]}";

    public const string BridgePrefix = "nsb-";

    /// <summary>A temporary folder next to image <paramref name="image"/> in <paramref name="chrootsDir"/>, of one of the <see cref="ImageKinds"/>.</summary>
    public static string ImageTemp(string chrootsDir, string image, string kind) => Path.Combine(chrootsDir, $".#{image}{kind}{Random8()}{Random8()}");

    /// <summary>The lock held while image <paramref name="image"/> is built or replaced.</summary>
    public static string BuildLock(string chrootsDir, string image) => Path.Combine(chrootsDir, $".#{image}.build.lck");

    /// <summary>The build lock of a temporary image folder.</summary>
    public static string BuildLockOf(string tempDir)
    {
        var name = Path.GetFileName(tempDir)[2..];
        var image = name[..ImageKinds.Max(k => name.LastIndexOf(k, StringComparison.Ordinal))];
        return BuildLock(Path.GetDirectoryName(tempDir)!, image);
    }

    /// <summary>nspawn locks '.#' + snapshot name + '.lck' next to its snapshot '.#machine.*': the lock names the snapshot.</summary>
    public static string? SnapshotFromLock(string? lockPath)
    {
        var name = Path.GetFileName(lockPath);
        if (lockPath is null || name is null || !name.StartsWith(".#.#machine.", StringComparison.Ordinal) || !name.EndsWith(".lck", StringComparison.Ordinal))
            return null;
        return Path.Combine(Path.GetDirectoryName(lockPath)!, name[2..^4]);
    }

    public static string SnapshotLock(string snapshot) => Path.Combine(Path.GetDirectoryName(snapshot)!, ".#" + Path.GetFileName(snapshot) + ".lck");

    private static string Random8() => Guid.NewGuid().ToString("N")[..8];
}
