using System.Diagnostics;

namespace Nspawn.Build;

/// <summary>
/// Under sudo the build runs as root, so what it writes in the user's tree (obj/, bin/, test results, logs)
/// would be root's. MSBuild cannot drop root for the build itself, so ownership is given back at the end:
/// every file under the given folders that is owned by root and was created or changed since the build started (ctime: copies keep their old mtime).
/// The images in the chroots folder stay root's.
/// </summary>
internal static class Ownership
{
    public static (uint Uid, uint Gid)? SudoUser =>
        Environment.IsPrivilegedProcess
        && uint.TryParse(Environment.GetEnvironmentVariable("SUDO_UID"), out var uid) && uid != 0
        && uint.TryParse(Environment.GetEnvironmentVariable("SUDO_GID"), out var gid)
            ? (uid, gid) : null;

    public static async Task ReturnToSudoUserAsync(IEnumerable<string> folders, string? keep, bool recursive, CancellationToken cancellationToken)
    {
        if (SudoUser is not { } user)
            return;
        var since = new DateTimeOffset(Process.GetCurrentProcess().StartTime).ToUnixTimeSeconds() - 1;
        foreach (var folder in folders.Select(f => Path.GetFullPath(f).TrimEnd('/')).Where(Directory.Exists).Distinct())
        {
            var args = new List<string> { folder, "-xdev" };
            if (!recursive)
                args.AddRange(["-maxdepth", "1"]);
            if (keep is not null)
                args.AddRange(["(", "-path", Path.GetFullPath(keep).TrimEnd('/'), "-prune", ")", "-o"]);
            args.AddRange(["(", "-uid", "0", "-newerct", $"@{since}", "-exec", "chown", "-h", $"{user.Uid}:{user.Gid}", "--", "{}", "+", ")"]);
            await HostCommand.RunAsync(ToolLocator.Require(Tool.Find), args, cancellationToken);
        }
    }
}
