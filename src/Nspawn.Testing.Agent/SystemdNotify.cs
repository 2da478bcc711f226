using System.Net.Sockets;
using System.Text;

namespace Nspawn.Testing.Agent;

/// <summary>sd_notify: one datagram to $NOTIFY_SOCKET.</summary>
internal static class SystemdNotify
{
    public static void Send(string state)
    {
        var address = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(address))
            return;
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        // '@' names an abstract socket.
        socket.SendTo(Encoding.UTF8.GetBytes(state), new UnixDomainSocketEndPoint(address[0] == '@' ? "\0" + address[1..] : address));
    }
}
