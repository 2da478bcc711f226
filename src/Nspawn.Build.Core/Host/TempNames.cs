using System.Text.RegularExpressions;

namespace Nspawn.Build;

/// <summary>
/// Every name we make up, in one place: machine names, and the hidden folders and locks next to an image
/// ('.#NAME.KIND-xxxx'), which the reaper recognises and removes when nobody holds their build lock.
/// </summary>
internal static partial class TempNames
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

    [GeneratedRegex(@"^\.#(?<image>[a-z0-9][a-z0-9-]*)(\.new-|\.old-|\.recv-|\.send-)[0-9a-f]{16}$")]
    private static partial Regex ImageTempName();

    /// <summary>The image that a temporary folder of <see cref="ImageTemp"/> belongs to; null for any other name.</summary>
    public static string? ImageOfTemp(string name) => ImageTempName().Match(name) is { Success: true } m ? m.Groups["image"].Value : null;

    /// <summary>A folder nspawn makes for a snapshot machine ('.#machine.IMAGExxxx'), next to the image.</summary>
    public static bool IsSnapshot(string name) => name.StartsWith(".#machine.", StringComparison.Ordinal);

    /// <summary>A name in the chroots folder that we (or nspawn, for our machines) make: a temporary image folder or a snapshot.</summary>
    public static bool IsOurs(string name) => IsSnapshot(name) || ImageOfTemp(name) is not null;

    /// <summary>
    /// nspawn's lock on an image that a machine runs from read-only (overlay machines): '.#IMAGE.lck' next to it,
    /// held with a shared OFD lock. It is a file of its own, so it stays when the image is renamed aside.
    /// </summary>
    public static string ImageLock(string chrootsDir, string image) => Path.Combine(chrootsDir, $".#{image}.lck");

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
