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

    /// <summary>
    /// Serves on <paramref name="path"/>; <paramref name="warm"/>, once ready, readies what the first command needs.
    /// With <paramref name="acceptThreads"/>, that many threads wait in accept(2) and each serves the call the kernel woke
    /// it for, up to its first wait (a command that ends within PolledExec's first milliseconds is answered there): one
    /// thread woken per call, where the runtime's accept wakes its event thread and then a pool thread.
    /// </summary>
    public static async Task RunAsync(string path, InvokeRoute invoke, bool warm, int acceptThreads = 0)
    {
        File.Delete(path);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(128);
        SystemdNotify.Send("READY=1");
        // After READY=1: the boot does not wait for it, and the host's first command no longer pays for it.
        if (warm)
            _ = Task.Run(ExecHandler.WarmAsync);
        if (acceptThreads > 0)
        {
            var threads = Enumerable.Range(0, acceptThreads).Select(_ => new Thread(() => Accept(listener, invoke)) { IsBackground = true, Name = "nspawn-accept" }).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            return;
        }
        while (true)
        {
            var client = await listener.AcceptAsync();
            _ = Task.Run(() => Connection.ServeAsync(client, invoke));
        }
    }

    private static void Accept(Socket listener, InvokeRoute invoke)
    {
        while (true)
        {
            Socket client;
            try
            {
                client = listener.Accept();
            }
            catch (SocketException)
            {
                // Out of file descriptors, or a connection gone before it was taken: the next one, after a breath.
                Thread.Sleep(10);
                continue;
            }
            _ = Connection.ServeAsync(client, invoke);
        }
    }
}
