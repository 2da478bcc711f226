using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using CliWrap;
using CliWrap.Buffered;
using NuGet.Versioning;

namespace Nspawn.Build;

/// <summary>A host program we run, the Debian package that provides it and the oldest version we support.</summary>
public sealed record Tool(string Name, string AptPackage, string? MinimumVersion = null, string[]? VersionArgs = null)
{
    // --notify-ready and X_NSPAWN_LEADER_PID need a recent nspawn; 247 is Debian bullseye's.
    public static readonly Tool SystemdNspawn = new("systemd-nspawn", "systemd-container", "247", ["--version"]);
    public static readonly Tool SystemdRun = new("systemd-run", "systemd");
    public static readonly Tool Systemctl = new("systemctl", "systemd");
    public static readonly Tool Machinectl = new("machinectl", "systemd-container");
    public static readonly Tool Journalctl = new("journalctl", "systemd");
    public static readonly Tool Btrfs = new("btrfs", "btrfs-progs");
    public static readonly Tool MkfsBtrfs = new("mkfs.btrfs", "btrfs-progs");
    // 1.0.124 knows bookworm and later suites without a symlink of its own.
    public static readonly Tool Debootstrap = new("debootstrap", "debootstrap", "1.0.124", ["--version"]);
    public static readonly Tool Eatmydata = new("eatmydata", "eatmydata");
    public static readonly Tool Mount = new("mount", "mount");
    public static readonly Tool Umount = new("umount", "mount");
    public static readonly Tool Sh = new("sh", "dash");
}

/// <summary>Finds tools on PATH (and the sbin folders, which a user's PATH often lacks) and checks their versions.</summary>
public static partial class Tools
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
            var result = Cli.Wrap(path).WithArguments(tool.VersionArgs ?? ["--version"])
                .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync().GetAwaiter().GetResult();
            var version = ParseVersion(result.StandardOutput + "\n" + result.StandardError);
            var minimum = NuGetVersion.Parse(tool.MinimumVersion);
            if (version is null || version < minimum)
                throw new NspawnException(ErrorCodes.ToolTooOld,
                    $"'{path}' is version {version?.ToNormalizedString() ?? "unknown"}, older than {tool.MinimumVersion} which Nspawn.Build needs. Upgrade the package '{tool.AptPackage}' (for example from your distribution's backports).");
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

    public static void RequireRoot()
    {
        if (Environment.IsPrivilegedProcess)
            return;
        throw new NspawnException(ErrorCodes.NotRoot,
            "Nspawn.Build must run as root to mount file systems and boot machines. Run the build with sudo, for example 'sudo dotnet build -t:ContainerTest'.");
    }
}
