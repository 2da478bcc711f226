using System.Net.Sockets;
using System.Text;

namespace Nspawn.Build;

/// <summary>
/// The sd_notify socket that nspawn reports to (NOTIFY_SOCKET) when no host systemd listens: it gives the
/// leader PID and READY=1. Disposed right after READY: nspawn keeps sending status messages, and a socket
/// nobody drains would fill (it holds 10) and block nspawn and the guest; a closed one just drops them.
/// </summary>
internal sealed class NotifyListener : IDisposable
{
    private readonly Socket _socket;

    public string Path { get; }
    public int? LeaderPid { get; private set; }
    public string? Status { get; private set; }

    private NotifyListener(string path, Socket socket)
    {
        Path = path;
        _socket = socket;
    }

    public static NotifyListener Bind(string path)
    {
        File.Delete(path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        return new NotifyListener(path, socket);
    }

    /// <summary>Reads messages until READY=1 has come (with the leader PID), or the token is canceled.</summary>
    public async Task WaitForReadyAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        while (true)
        {
            var n = await _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            var ready = false;
            foreach (var (key, value) in Parse(Encoding.UTF8.GetString(buffer, 0, n)))
            {
                if (key == "X_NSPAWN_LEADER_PID" && int.TryParse(value, out var pid))
                    LeaderPid = pid;
                else if (key == "STATUS")
                    Status = value;
                else if (key == "READY" && value == "1")
                    ready = true;
            }
            if (ready)
                return;
        }
    }

    public static IEnumerable<(string Key, string Value)> Parse(string message)
    {
        foreach (var line in message.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = line.IndexOf('=');
            if (eq > 0)
                yield return (line[..eq], line[(eq + 1)..]);
        }
    }

    public void Dispose()
    {
        _socket.Dispose();
        File.Delete(Path);
    }
}
