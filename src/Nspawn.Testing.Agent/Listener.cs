using System.Net.Sockets;
using Nspawn.Build.Agent;

namespace Nspawn.Testing.Agent;

/// <summary>
/// Listens on a unix socket and serves one request per connection; tells systemd it is ready once it listens
/// (Type=notify, where $NOTIFY_SOCKET is set), so the guest's boot, and so the machine's start, include it.
/// </summary>
internal static class Listener
{
    /// <summary>Where the host binds the agent's folder: root's only, on both sides.</summary>
    public const string SocketDir = "/run/nspawn-agent";
    public static readonly string DefaultSocket = Path.Combine(SocketDir, "agent.sock");

    /// <summary>Serves a call of <see cref="AgentRequest.Invoke"/>: its reply, or null when it answered the connection itself.</summary>
    public delegate Task<AgentReply?> InvokeRoute(Connection connection, AgentRequest request, byte[] rawRequest);

    /// <summary>Serves on <paramref name="path"/>; <paramref name="warm"/>, once ready, readies what the first command needs.</summary>
    public static async Task RunAsync(string path, InvokeRoute invoke, bool warm)
    {
        File.Delete(path);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(128);
        SystemdNotify.Send("READY=1");
        // After READY=1: the boot does not wait for it, and the host's first command no longer pays for it.
        if (warm)
            _ = Task.Run(ExecHandler.WarmAsync);
        while (true)
        {
            var client = await listener.AcceptAsync();
            _ = Task.Run(() => Connection.ServeAsync(client, invoke));
        }
    }
}
