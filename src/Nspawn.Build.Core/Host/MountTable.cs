using System.Text;

namespace Nspawn.Build;

/// <summary>Reads the mount table: which file system a path is on, and whether a folder is a mount point.</summary>
internal static class MountTable
{
    public static IReadOnlyList<Mount> Read(string file = "/proc/self/mountinfo") => Parse(File.ReadAllText(file));

    public static IReadOnlyList<Mount> Parse(string mountinfo)
    {
        var mounts = new List<Mount>();
        foreach (var line in mountinfo.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            // id parent major:minor root mountpoint options [optional fields...] - fstype source superoptions
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            if (dash < 6 || fields.Length < dash + 3)
                continue;
            mounts.Add(new Mount(Unescape(fields[4]), fields[dash + 1], Unescape(fields[dash + 2]), Unescape(fields[3]),
                fields.Length > dash + 3 ? fields[dash + 3] : "", fields[5]));
        }
        return mounts;
    }

    /// <summary>The mount that holds <paramref name="path"/>: the last mounted one with the longest matching mount point.</summary>
    public static Mount? Find(IReadOnlyList<Mount> mounts, string path)
    {
        Mount? best = null;
        foreach (var m in mounts)
            if (IsUnder(path, m.MountPoint) && (best is null || m.MountPoint.Length >= best.MountPoint.Length))
                best = m;
        return best;
    }

    public static bool IsUnder(string path, string dir) =>
        dir == "/" || path == dir || path.StartsWith(dir + "/", StringComparison.Ordinal);

    // mountinfo writes space, tab, newline and backslash as \040, \011, \012 and \134.
    private static string Unescape(string s)
    {
        if (!s.Contains('\\'))
            return s;
        var sb = new StringBuilder();
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 3 < s.Length && s.Substring(i + 1, 3).All(c => c is >= '0' and <= '7'))
            {
                sb.Append((char)Convert.ToInt32(s.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
                sb.Append(s[i]);
        }
        return sb.ToString();
    }
}
