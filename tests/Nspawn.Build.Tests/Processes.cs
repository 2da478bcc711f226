namespace Nspawn.Build.Tests;

/// <summary>Processes of the host, guests' included (their PIDs as the host sees them).</summary>
public static class Processes
{
    /// <summary>The PIDs of processes with this command line, the program named with or without its folder.</summary>
    public static List<int> Named(string cmdline) =>
        Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => int.TryParse(n, out _))
            .Where(n =>
            {
                try
                {
                    var line = File.ReadAllText($"/proc/{n}/cmdline").Replace('\0', ' ').Trim();
                    return line == cmdline || line.EndsWith("/" + cmdline, StringComparison.Ordinal);
                }
                catch (IOException)
                {
                    return false;
                }
            }).Select(n => int.Parse(n!)).ToList();
}
