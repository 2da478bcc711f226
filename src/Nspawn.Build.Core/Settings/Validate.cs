using System.Globalization;
using System.Text.RegularExpressions;

namespace Nspawn.Build;

/// <summary>Checks of user input that becomes paths, machine names or tool arguments. Each throws a coded error.</summary>
internal static partial class Validate
{
    // A plain name: usable as a directory name and inside a host name, so no dots, slashes or leading dash.
    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,30}$")]
    private static partial Regex PlainName();

    // Debian package names (policy 5.6.1), optionally with an architecture qualifier.
    [GeneratedRegex("^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")]
    private static partial Regex PackageName();

    [GeneratedRegex(@"^(?<n>\d+(\.\d+)?)\s*(?<u>[KMGT]i?B?|B)?$", RegexOptions.IgnoreCase)]
    private static partial Regex SizeText();

    public static string ImageName(string? value, string property)
    {
        if (value is null || !PlainName().IsMatch(value))
            throw new NspawnException(ErrorCodes.BadImageName,
                $"{property} '{value}' is not a plain name. Use 1 to 31 lower-case letters, digits and dashes, starting with a letter or digit (for example 'bookworm').");
        return value;
    }

    public static string MachineName(string? value, string what)
    {
        if (value is null || !PlainName().IsMatch(value))
            throw new NspawnException(ErrorCodes.BadMachineName,
                $"{what} '{value}' is not a plain name. Use 1 to 31 lower-case letters, digits and dashes, starting with a letter or digit (for example 'web').");
        return value;
    }

    public static string Mirror(string? value, string property)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https") || string.IsNullOrEmpty(uri.Host))
            throw new NspawnException(ErrorCodes.BadMirror,
                $"{property} '{value}' is not an http or https URL. Set it to a Debian mirror such as '{Settings.Mirror.DefaultText}'.");
        return value!;
    }

    public static string Variant(string? value, string property)
    {
        // debootstrap's variants; an unknown one would fail minutes later inside debootstrap.
        string[] known = ["minbase", "buildd", "fakechroot", "standard"];
        if (value is null || !known.Contains(value))
            throw new NspawnException(ErrorCodes.BadOption,
                $"{property} '{value}' is not a debootstrap variant. Use one of: {string.Join(", ", known)}.");
        return value;
    }

    public static IReadOnlyList<string> Packages(string? value, string property)
    {
        var names = (value ?? "").Split([',', ';', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var name in names)
            if (!PackageName().IsMatch(name))
                throw new NspawnException(ErrorCodes.BadPackageList,
                    $"{property} holds '{name}', which is not a Debian package name. Give a comma-separated list such as '{Settings.Include.DefaultText}'.");
        return names.Distinct().Order(StringComparer.Ordinal).ToArray();
    }

    /// <summary>Parses sizes such as 2G, 1536M, 2GiB or a plain byte count.</summary>
    public static long Size(string? value, string property)
    {
        var m = SizeText().Match((value ?? "").Trim());
        if (m.Success && double.TryParse(m.Groups["n"].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var n))
        {
            var unit = m.Groups["u"].Success ? char.ToUpperInvariant(m.Groups["u"].Value[0]) : 'B';
            var bytes = n * unit switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, 'T' => 1L << 40, _ => 1L };
            // btrfs needs about 110 MiB for its own structures; a Debian image needs far more.
            if (bytes >= 256L << 20 && bytes < long.MaxValue)
                return (long)bytes;
        }
        throw new NspawnException(ErrorCodes.BadSize,
            $"{property} '{value}' is not a size of at least 256M. Write a number with a unit, such as '2G' or '1536M'.");
    }

    /// <summary>Architectures and archive components: lower-case words, as Debian names them.</summary>
    public static IReadOnlyList<string> Words(string? value, string property)
    {
        var words = (value ?? "").Split([',', ';', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var word in words)
            if (!PlainName().IsMatch(word))
                throw new NspawnException(ErrorCodes.BadOption, $"{property} holds '{word}', which is not a plain lower-case name (such as 'main', 'contrib' or 'amd64').");
        return words;
    }

    /// <summary>At most one word (an architecture).</summary>
    public static string Word(string? value, string property) =>
        Words(value, property) switch
        {
            [] => "",
            [var one] => one,
            _ => throw new NspawnException(ErrorCodes.BadOption, $"{property} '{value}' names more than one; give one, such as 'amd64'."),
        };

    /// <summary>An absolute path inside an image, with no '..' that could lead out of it.</summary>
    public static string ImagePath(string? value, string property)
    {
        if (string.IsNullOrEmpty(value) || !value.StartsWith('/') || value.Split('/').Contains("..") || value.Contains('\0'))
            throw new NspawnException(ErrorCodes.BadPath, $"{property} '{value}' is not an absolute path inside the image (such as '/etc/app.conf').");
        return value;
    }

    /// <summary>An existing file whose content goes into an image; relative paths are taken from <paramref name="baseDir"/>.</summary>
    public static string InputFile(string? value, string baseDir, string property)
    {
        var path = Path.GetFullPath(value ?? "", string.IsNullOrEmpty(baseDir) ? Directory.GetCurrentDirectory() : baseDir);
        if (string.IsNullOrWhiteSpace(value) || !File.Exists(path))
            throw new NspawnException(ErrorCodes.BadPath, $"{property} '{value}' is not an existing file. Fix the path (a relative one is taken from the project's folder).");
        return path;
    }

    /// <summary>A maximum age such as '7d', '12h', '90m' or seconds; empty means none.</summary>
    public static TimeSpan? MaxAge(string? value, string property)
    {
        var text = (value ?? "").Trim();
        if (text == "")
            return null;
        var unit = char.ToLowerInvariant(text[^1]) switch { 'd' => 86400, 'h' => 3600, 'm' => 60, _ => 0 };
        if (double.TryParse(unit == 0 ? text : text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n > 0)
            return TimeSpan.FromSeconds(n * (unit == 0 ? 1 : unit));
        throw new NspawnException(ErrorCodes.BadTimeout, $"{property} '{value}' is not an age. Write a number with d, h or m, such as '7d', or leave it empty.");
    }

    /// <summary>Parses a timeout in seconds ('60', '1.5') or as a TimeSpan ('00:01:00').</summary>
    public static TimeSpan Timeout(string? value, string property)
    {
        var text = (value ?? "").Trim();
        if (text.EndsWith('s'))
            text = text[..^1];
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds > 0 && seconds <= 86400)
            return TimeSpan.FromSeconds(seconds);
        if (text.Contains(':') && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero)
            return span;
        throw new NspawnException(ErrorCodes.BadTimeout,
            $"{property} '{value}' is not a timeout. Give seconds greater than 0, such as '60' or '2.5'.");
    }

    /// <summary>An IPv4 range of private addresses (RFC 1918), from /8 to /29: a network of ours must never hide real hosts.</summary>
    public static Ipv4Range NetworkRange(string? value, string property)
    {
        Ipv4Range[] privateRanges = [new(10u << 24, 8), new((172u << 24) | (16u << 16), 12), new((192u << 24) | (168u << 16), 16)];
        if (Ipv4Range.TryParse(value) is { PrefixLength: >= 8 and <= 29 } range && (value ?? "").Contains('/')
            && privateRanges.Any(p => p.PrefixLength <= range.PrefixLength && p.Overlaps(range)))
            return range;
        throw new NspawnException(ErrorCodes.BadNetworkRange,
            $"{property} '{value}' is not a private IPv4 range from /8 to /29 (inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16). Write one such as '{Settings.NetworkRange.DefaultText}' or '192.168.77.0/24'.");
    }

    /// <summary>NspawnPoolSize: how many machines are kept booted ahead for the tests, 0 (none) to <see cref="Defaults.MaxPoolSize"/>.</summary>
    public static int PoolSize(string? value, string property)
    {
        if (int.TryParse((value ?? "").Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= Defaults.MaxPoolSize)
            return n;
        throw new NspawnException(ErrorCodes.BadPoolSize,
            $"{property} '{value}' is not a number of machines from 0 to {Defaults.MaxPoolSize}. Give how many machines to keep booted ahead for the tests, such as '2', or 0 for none.");
    }

    public static string AbsolutePath(string? value, string property)
    {
        if (string.IsNullOrWhiteSpace(value) || !Path.IsPathRooted(value) || value.Contains('\0'))
            throw new NspawnException(ErrorCodes.BadPath, $"{property} '{value}' is not an absolute path. Set it to a full path.");
        return Path.GetFullPath(value).TrimEnd('/') is { Length: > 0 } p ? p : "/";
    }

    /// <summary>true or false.</summary>
    public static bool Flag(string? value, string property) => Choice(value, property, ("true", true), ("false", false));

    public static T Choice<T>(string? value, string property, params (string Name, T Value)[] choices)
    {
        foreach (var (name, v) in choices)
            if (string.Equals(name, value?.Trim(), StringComparison.OrdinalIgnoreCase))
                return v;
        throw new NspawnException(ErrorCodes.BadOption,
            $"{property} '{value}' is not one of: {string.Join(", ", choices.Select(c => c.Name))}.");
    }
}
