using System.Net.Sockets;
using System.Text.Json;

namespace Nspawn.Build.Agent;

/// <summary>
/// A connection to a machine's agent. Its socket lies in a folder the guest writes: it is opened without following a
/// link (O_PATH), checked to be a socket, and connected to through /proc/self/fd, so a link planted there can never
/// point the host at one of its own sockets. Everything the agent sends is untrusted (frames are capped).
/// </summary>
internal sealed class AgentConnection : IAsyncDisposable
{
    private const uint SocketType = 0xc000;
    private readonly SemaphoreSlim _write = new(1, 1);

    private AgentConnection(NetworkStream stream) => Stream = stream;

    public NetworkStream Stream { get; }

    /// <summary>Connects to the agent of <paramref name="machineName"/>; the caller is root (the folder is root's only).</summary>
    public static AgentConnection Connect(string machineName)
    {
        using var dir = NativeFile.Open(AgentSetup.SocketDirOf(machineName), NativeFile.Path | NativeFile.Directory);
        using var socketFile = NativeFile.Open("agent.sock", NativeFile.Path, dir);
        if (FileStatus.Of(socketFile).Type != SocketType)
            throw new IOException($"The agent's socket of machine {machineName} is not a socket.");
        var socket = new Socket(AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint($"/proc/self/fd/{socketFile.DangerousGetHandle()}"));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new AgentConnection(new NetworkStream(socket, ownsSocket: true));
    }

    /// <summary>Asks the agent whether it answers, within <paramref name="limit"/>.</summary>
    public static async Task<AgentReply> PingAsync(string machineName, TimeSpan limit, CancellationToken cancellationToken)
    {
        await using var connection = Connect(machineName);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit);
        try
        {
            await connection.SendAsync(new AgentRequest(AgentRequest.Ping), timeout.Token);
            while (await AgentFrame.ReadAsync(connection.Stream, timeout.Token) is { } frame)
                if (frame.Kind == AgentFrame.Json)
                    return JsonSerializer.Deserialize(frame.Payload, AgentJson.Default.AgentReply) ?? throw new InvalidDataException("An empty reply.");
            throw new IOException("The agent closed the connection without a reply.");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"The agent of machine {machineName} did not answer within {limit.TotalSeconds:0.#} s.");
        }
    }

    public Task SendAsync(AgentRequest request, CancellationToken cancellationToken) =>
        SendAsync(AgentFrame.Json, JsonSerializer.SerializeToUtf8Bytes(request, AgentJson.Default.AgentRequest), cancellationToken);

    public async Task SendAsync(byte kind, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        await _write.WaitAsync(cancellationToken);
        try
        {
            await AgentFrame.WriteAsync(Stream, kind, payload, cancellationToken);
        }
        finally
        {
            _write.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Stream.DisposeAsync();
        _write.Dispose();
    }
}
