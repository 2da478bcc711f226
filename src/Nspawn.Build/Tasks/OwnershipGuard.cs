using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// Under sudo, gives what this build wrote in the user's tree back to the user when the build ends, however it
/// ends: passed, failed (a compile error, a failed test or stop) or canceled, which is when a user is most
/// often left with a root-owned obj/.
/// </summary>
internal sealed class OwnershipGuard((uint Uid, uint Gid) user, long since, IReadOnlyList<string> folders, IReadOnlyList<string> shallowFolders, string? chrootsDir) : IDisposable
{
    public static void Register(IBuildEngine4 engine, IReadOnlyList<string> folders, IReadOnlyList<string> shallowFolders, string? chrootsDir)
    {
        // Who and since when are taken now: at the build's end, a reused MSBuild node may hold another build's environment.
        if (Ownership.SudoUser is not { } user)
            return;
        var key = "Nspawn.Build.Ownership:" + string.Join('\0', folders.Concat(shallowFolders));
        if (engine.GetRegisteredTaskObject(key, RegisteredTaskObjectLifetime.Build) is null)
            engine.RegisterTaskObject(key, new OwnershipGuard(user, Ownership.BuildStart, folders, shallowFolders, chrootsDir), RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
    }

    public void Dispose()
    {
        try
        {
            Ownership.ReturnTo(user, since, folders, chrootsDir, recursive: true);
            Ownership.ReturnTo(user, since, shallowFolders, chrootsDir, recursive: false);
        }
        catch (IOException)
        {
            // Nothing left to report to at the end of the build.
        }
    }
}
