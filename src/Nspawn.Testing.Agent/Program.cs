using System.Net.Sockets;
using Nspawn.Build.Agent;

namespace Nspawn.Testing.Agent;

/// <summary>
/// Listens on a unix socket in the folder the host binds at <see cref="SocketDir"/> (root's only, on both sides)
/// and serves one request per connection. Tells systemd it is ready once it listens (Type=notify), so the guest's
/// boot, and so the machine's start, include it.
/// </summary>
internal static class Program
{
    public const string SocketDir = "/run/nspawn-agent";

    private static async Task<int> Main()
    {
        var path = Path.Combine(SocketDir, "agent.sock");
        File.Delete(path);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(128);
        SystemdNotify.Send("READY=1");
        while (true)
        {
            var client = await listener.AcceptAsync();
            _ = Task.Run(() => Connection.ServeAsync(client));
        }
    }
}
