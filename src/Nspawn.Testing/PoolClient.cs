using Nspawn.Build;

namespace Nspawn.Testing;

/// <summary>
/// A test's side of the warm pool (NspawnPoolSize): when the build keeps machines booted ahead (NSPAWN_POOL_DIR) and a
/// test asks for one like them, it takes a ready one instead of booting its own, or waits for the next one the pool
/// boots. Anything else (another image or options, no pool, a pool that gave up) boots the test's own.
/// </summary>
internal static class PoolClient
{
    /// <summary>How often a test that found no ready machine looks again.</summary>
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(5);

    /// <summary>A machine of the pool, now the caller's alone; null when the test must boot its own.</summary>
    public static async Task<Machine?> TryTakeAsync(StartOptions options, string imageDir, TimeSpan bootTimeout, CancellationToken cancellationToken)
    {
        if (Environment.GetEnvironmentVariable(PoolDir.Variable) is not { Length: > 0 } dir
            || PoolDir.Template(dir) is not { } template || !Matches(options, imageDir, template))
            return null;
        // As long as a boot of its own could take (the project's NspawnBootTimeout).
        var deadline = DateTime.UtcNow + bootTimeout;
        while (DateTime.UtcNow < deadline && Directory.Exists(dir) && PoolDir.Failure(dir) is null)
        {
            if (PoolDir.ReadyCount(dir) > 0)
                using (ProcessPrivileges.Current.Root())
                    if (PoolDir.TryClaim(dir) is { } machine)
                        return machine;
            await Task.Delay(Poll, cancellationToken);
        }
        return null;
    }

    /// <summary>
    /// Only what the pool boots: its image, mode, stop timeout and network, no binds or extra nspawn options (a boot
    /// timeout does not matter once booted). On a private network the name is the machine's hostname, so only a
    /// test that keeps the default name gets one.
    /// </summary>
    internal static bool Matches(StartOptions options, string imageDir, PoolTemplate template) =>
        imageDir == template.ImageDir
        && (options.Mode is null || options.Mode == template.Mode)
        && (options.StopTimeout is null || options.StopTimeout == template.StopTimeout)
        && (options.Network is null || options.Network == template.Network)
        && (options.PrivateUsers is null || options.PrivateUsers == template.PrivateUsers)
        && (template.Network != NetworkMode.Private || options.LogicalName == template.LogicalName)
        && options.Binds.Count == 0
        && options.NspawnArguments.Count == 0;
}
