namespace Nspawn.Build;

/// <summary>The /etc/hosts every machine of a private network reads: localhost, then each machine's logical name and address.</summary>
internal static class HostsFile
{
    public static string Render(IEnumerable<(string Name, string Address)> machines)
    {
        var text = new System.Text.StringBuilder();
        text.Append("# Written by Nspawn.Build for the machines of one private network.\n");
        text.Append("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
        foreach (var (name, address) in machines)
            text.Append(address).Append('\t').Append(name).Append('\n');
        return text.ToString();
    }
}
