using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using NuGet.Versioning;

namespace Nspawn.Build;

/// <summary>Finds tools on PATH (and the sbin folders, which a user's PATH often lacks) and checks their versions.</summary>
internal static partial class ToolLocator
{
    private static readonly ConcurrentDictionary<string, string> Checked = new();

    [GeneratedRegex(@"(\d+(\.\d+){0,3})")]
    private static partial Regex FirstVersion();

    public static string? Find(string name)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        var dirs = path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(["/usr/local/sbin", "/usr/sbin", "/sbin"]);
        foreach (var dir in dirs)
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate) && (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0)
                return candidate;
        }
        return null;
    }

    /// <summary>The tool's path; throws NSPAWN0002 when it is missing and NSPAWN0003 when it is too old.</summary>
    public static string Require(Tool tool)
    {
        var key = tool.Name + "\0" + Environment.GetEnvironmentVariable("PATH");
        if (Checked.TryGetValue(key, out var known))
            return known;
        var path = Find(tool.Name) ?? throw new NspawnException(ErrorCodes.ToolMissing,
            $"'{tool.Name}' was not found on PATH. Install it with 'sudo apt-get install {tool.AptPackage}'.");
        if (tool.MinimumVersion is not null)
        {
            var remembered = ToolVersions.Default.Known(path);
            var version = remembered;
            if (version is null)
            {
                var result = HostCommand.RunAsync(path, tool.VersionArgs ?? ["--version"], CancellationToken.None, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
                version = ParseVersion(result.StandardOutput + "\n" + result.StandardError);
            }
            var minimum = NuGetVersion.Parse(tool.MinimumVersion);
            if (version is null || version < minimum)
                throw new NspawnException(ErrorCodes.ToolTooOld,
                    $"'{path}' is version {version?.ToNormalizedString() ?? "unknown"}, older than {tool.MinimumVersion} which Nspawn.Build needs. Upgrade the package '{tool.AptPackage}' (for example from your distribution's backports).");
            // Only a version that will do is kept: a build that fails here leaves nothing behind.
            if (remembered is null)
                ToolVersions.Default.Remember(path, version);
        }
        Checked[key] = path;
        return path;
    }

    /// <summary>The first dotted number in a --version text: "systemd 252 (252.39-1)" is 252, "debootstrap 1.0.128+nmu2" is 1.0.128.</summary>
    public static NuGetVersion? ParseVersion(string text)
    {
        var m = FirstVersion().Match(text);
        if (!m.Success)
            return null;
        var parts = m.Value.Split('.');
        var padded = string.Join('.', parts.Concat(Enumerable.Repeat("0", Math.Max(0, 3 - parts.Length))));
        return NuGetVersion.TryParse(padded, out var v) ? v : null;
    }
}
