namespace Nspawn.Build;

/// <summary>Chooses the <see cref="EphemeralMode"/> for a chroots folder.</summary>
internal static class EphemeralModeResolver
{
    /// <summary>
    /// NspawnEphemeralMode as written (its default when empty): snapshot, overlay, or auto: snapshot where the
    /// chroots folder is on btrfs or has its loop file (unmounted after a reboot), overlay elsewhere.
    /// </summary>
    public static EphemeralMode Resolve(string? value, string chrootsDir, string loopFile) =>
        Settings.EphemeralMode.Read(value)
        ?? (File.Exists(loopFile) || (BtrfsStore.ExistingDir(chrootsDir) is { } dir && BtrfsStore.IsBtrfs(dir)) ? EphemeralMode.Snapshot : EphemeralMode.Overlay);
}
