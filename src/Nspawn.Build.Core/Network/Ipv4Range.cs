using System.Globalization;

namespace Nspawn.Build;

/// <summary>An IPv4 network such as 10.213.0.0/16: a first address and a prefix length.</summary>
internal readonly record struct Ipv4Range(uint First, int PrefixLength)
{
    public ulong Size => 1UL << (32 - PrefixLength);
    public uint Last => (uint)(First + Size - 1);

    /// <summary>The address <paramref name="n"/> places after the first (1 is the first host address).</summary>
    public string Address(uint n) => Format(First + n);

    public bool Overlaps(Ipv4Range other) => First <= other.Last && other.First <= Last;

    /// <summary>The networks of <paramref name="prefixLength"/> inside this one, in order; itself when it is that small already.</summary>
    public IEnumerable<Ipv4Range> Subnets(int prefixLength)
    {
        if (prefixLength <= PrefixLength)
        {
            yield return this;
            yield break;
        }
        var step = 1UL << (32 - prefixLength);
        for (ulong first = First; first <= Last; first += step)
            yield return new Ipv4Range((uint)first, prefixLength);
    }

    public override string ToString() => $"{Format(First)}/{PrefixLength}";

    /// <summary>'10.213.0.0/16', or a plain address (a /32); null when it is neither. Host bits are cleared.</summary>
    public static Ipv4Range? TryParse(string? text)
    {
        var parts = (text ?? "").Trim().Split('/');
        if (parts.Length > 2 || ParseAddress(parts[0]) is not { } address)
            return null;
        var prefix = 32;
        if (parts.Length == 2 && (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > 32))
            return null;
        var mask = prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);
        return new Ipv4Range(address & mask, prefix);
    }

    public static uint? ParseAddress(string text)
    {
        var octets = text.Split('.');
        if (octets.Length != 4)
            return null;
        uint value = 0;
        foreach (var octet in octets)
        {
            if (octet.Length is 0 or > 3 || !byte.TryParse(octet, NumberStyles.None, CultureInfo.InvariantCulture, out var b))
                return null;
            value = (value << 8) | b;
        }
        return value;
    }

    public static string Format(uint address) => $"{address >> 24}.{(address >> 16) & 255}.{(address >> 8) & 255}.{address & 255}";
}
