using System.Text.Json;

namespace Nspawn.Build;

/// <summary>
/// What the host routes or uses of IPv4 when a build starts: every route of every table but the default ones,
/// every address with its subnet, and the name servers (reached through the default route, so that a network
/// of ours must not hide them). A private network is taken only where none of these is.
/// </summary>
internal static class HostRoutes
{
    public static async Task<IReadOnlyList<TakenRange>> ReadAsync(CancellationToken cancellationToken)
    {
        var ip = ToolLocator.Require(Tool.Ip);
        var routes = await HostCommand.RunCheckedAsync(ip, ["-j", "-4", "route", "show", "table", "all"], ErrorCodes.CommandFailed, cancellationToken);
        var addresses = await HostCommand.RunCheckedAsync(ip, ["-j", "-4", "address", "show"], ErrorCodes.CommandFailed, cancellationToken);
        var resolvConf = File.Exists("/etc/resolv.conf") ? File.ReadAllText("/etc/resolv.conf") : "";
        return [.. Routes(routes), .. Addresses(addresses), .. NameServers(resolvConf)];
    }

    /// <summary>'ip -j -4 route show table all': each route's destination, the default routes left out.</summary>
    public static IEnumerable<TakenRange> Routes(string json)
    {
        foreach (var route in Array(json))
            if (Text(route, "dst") is { } dst && dst != "default" && Ipv4Range.TryParse(dst) is { } range && range.PrefixLength > 0)
                yield return new TakenRange(range, $"a route{(Text(route, "dev") is { } dev ? " on " + dev : "")}{(Text(route, "table") is { } table ? " (table " + table + ")" : "")}");
    }

    /// <summary>'ip -j -4 address show': each address's subnet.</summary>
    public static IEnumerable<TakenRange> Addresses(string json)
    {
        foreach (var link in Array(json))
        {
            if (!link.TryGetProperty("addr_info", out var infos) || infos.ValueKind != JsonValueKind.Array)
                continue;
            foreach (var info in infos.EnumerateArray())
                if (Text(info, "local") is { } local && info.TryGetProperty("prefixlen", out var prefix) && prefix.TryGetInt32(out var length)
                    && Ipv4Range.TryParse($"{local}/{length}") is { } range)
                    yield return new TakenRange(range, $"the address {local}/{length} of {Text(link, "ifname")}");
        }
    }

    /// <summary>The IPv4 name servers of a resolv.conf.</summary>
    public static IEnumerable<TakenRange> NameServers(string resolvConf)
    {
        foreach (var line in resolvConf.Split('\n'))
        {
            var words = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (words is ["nameserver", var server, ..] && Ipv4Range.ParseAddress(server) is { } address)
                yield return new TakenRange(new Ipv4Range(address, 32), $"the name server {server} (/etc/resolv.conf)");
        }
    }

    private static List<JsonElement> Array(string json)
    {
        if (string.IsNullOrWhiteSpace(json))
            return [];
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement.EnumerateArray().Select(e => e.Clone()).ToList() : [];
    }

    private static string? Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
