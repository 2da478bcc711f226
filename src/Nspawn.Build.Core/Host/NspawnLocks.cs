namespace Nspawn.Build;

/// <summary>
/// Whether a machine runs from an image, in either mode, by the locks nspawn itself holds (whichever program
/// started it): a snapshot machine locks its snapshot ('.#.#machine.IMAGExxxx.lck'), an overlay machine the image
/// ('.#IMAGE.lck', which stays when the image is renamed aside, so it guards an old image swapped out too).
/// </summary>
internal static class NspawnLocks
{
    /// <summary>
    /// An overlay (read-only) machine runs from the image, or from an old one of the same name set aside. One in a user
    /// namespace boots a mapped view of the image, which nspawn locks instead: its record counts too.
    /// </summary>
    public static bool ImageHeld(string chrootsDir, string image) =>
        Held(TempNames.ImageLock(chrootsDir, image)) || IdmappedMount.Maps(Path.Combine(chrootsDir, image));

    /// <summary>A snapshot machine runs from a snapshot of the image.</summary>
    public static bool SnapshotHeld(string chrootsDir, string image) =>
        Directory.EnumerateFiles(chrootsDir, $".#.#machine.{image}*.lck").Any(Held);

    // A lock that is not a regular file (a link put there) is never opened, and counts as held: nothing is removed for it.
    private static bool Held(string lockFile) => LockProbe.IsHeld(lockFile);
}
