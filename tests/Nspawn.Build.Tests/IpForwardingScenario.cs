namespace Nspawn.Build.Tests;

/// <summary>
/// IPv4 forwarding turned on and back off as builds come and go, against the kernel's own switches, in a network
/// namespace of its own (see <see cref="IpForwardingTests"/>): "someone else" is this scenario writing the switch
/// itself. Each check prints "ok NAME" or "FAIL NAME: why".
/// </summary>
internal static class IpForwardingScenario
{
    private const string Switch = "/proc/sys/net/ipv4/ip_forward";

    public static int Run(string marker)
    {
        var failures = 0;
        void Check(string name, bool ok, string detail)
        {
            Console.WriteLine(ok ? $"ok {name}" : $"FAIL {name}: {detail}");
            failures += ok ? 0 : 1;
        }
        string Value() => File.ReadAllText(Switch).Trim();
        void Set(string value) => File.WriteAllText(Switch, value);

        if (Value() != "0" || File.Exists(marker))
        {
            Console.WriteLine($"FAIL start: forwarding is {Value()} in a new network namespace, or the marker {marker} is there");
            return 1;
        }

        // Two networks of ours: on with the first, off with the last.
        IpForwarding.Enable(marker);
        IpForwarding.Enable(marker);
        Check("on-for-our-network", Value() == "1", $"forwarding is {Value()}");
        IpForwarding.Release(stillNeeded: true, marker);
        Check("on-while-another-network-of-ours-needs-it", Value() == "1", $"forwarding is {Value()}");
        IpForwarding.Release(stillNeeded: false, marker);
        Check("off-with-the-last-network-of-ours", Value() == "0" && !File.Exists(marker), $"forwarding is {Value()}, marker there: {File.Exists(marker)}");

        // On before us: left on.
        Set("1");
        IpForwarding.Enable(marker);
        IpForwarding.Release(stillNeeded: false, marker);
        Check("left-on-when-it-was-on-before", Value() == "1" && !File.Exists(marker), $"forwarding is {Value()}, marker there: {File.Exists(marker)}");
        Set("0");

        // Someone else turned it off and on again while our network lived: theirs now, left on.
        IpForwarding.Enable(marker);
        Set("0");
        Set("1");
        IpForwarding.Release(stillNeeded: false, marker);
        Check("left-on-when-someone-else-turned-it-on-meanwhile", Value() == "1" && !File.Exists(marker), $"forwarding is {Value()}, marker there: {File.Exists(marker)}");
        Set("0");

        // Someone else turned it off while our network lived: left off.
        IpForwarding.Enable(marker);
        Set("0");
        IpForwarding.Release(stillNeeded: false, marker);
        Check("left-off-when-someone-else-turned-it-off-meanwhile", Value() == "0" && !File.Exists(marker), $"forwarding is {Value()}, marker there: {File.Exists(marker)}");

        // Gone with every network of ours, as found: the interfaces' own switches included.
        var before = Interfaces();
        IpForwarding.Enable(marker);
        IpForwarding.Release(stillNeeded: false, marker);
        var after = Interfaces();
        Check("every-switch-as-found", before == after, $"before: {before}; after: {after}");
        return failures == 0 ? 0 : 1;
    }

    private static string Interfaces() =>
        string.Join(' ', Directory.EnumerateDirectories("/proc/sys/net/ipv4/conf").Order(StringComparer.Ordinal)
            .Select(d => $"{Path.GetFileName(d)}={File.ReadAllText(Path.Combine(d, "forwarding")).Trim()}"));
}
