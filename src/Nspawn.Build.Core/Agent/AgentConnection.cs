using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build.Agent;

/// <summary>
/// A connection to a machine's agent. Its socket lies in a folder the guest writes: it is opened without following a
/// link (O_PATH), checked to be a socket, and connected to through /proc/self/fd, so a link planted there can never
/// point the host at one of its own sockets. Everything the agent sends is untrusted (frames are capped), and the
/// guest can keep the agent's listen queue full: the connect never blocks, so every call keeps its deadline.
/// </summary>
internal sealed class AgentConnection : IAsyncDisposable
{
    private const uint SocketType = 0xc000;
    /// <summary>The longest pause between two tries at a full listen queue.</summary>
    private const int MaxRetryMilliseconds = 50;
    private readonly SemaphoreSlim _write = new(1, 1);

    private AgentConnection(NetworkStream stream) => Stream = stream;

    public NetworkStream Stream { get; }

    /// <summary>
    /// Connects to the agent whose socket is in <paramref name="socketDir"/> (<see cref="AgentSetup.SocketDirOf"/>). A
    /// full listen queue is tried again until <paramref name="cancellationToken"/> ends the wait (OperationCanceledException,
    /// which callers turn into their own timeout). The folder is root's only: <paramref name="privileged"/> gives root,
    /// around each step that needs it and never across a wait, to a process that dropped it.
    /// </summary>
    public static async Task<AgentConnection> ConnectAsync(string socketDir, CancellationToken cancellationToken, Func<IDisposable>? privileged = null)
    {
        cancellationToken.ThrowIfCancellationRequested();
        SafeFileHandle socketFile;
        using (privileged?.Invoke())
        {
            using var dir = NativeFile.Open(socketDir, NativeFile.Path | NativeFile.Directory);
            socketFile = NativeFile.Open(AgentSetup.SocketName, NativeFile.Path, dir);
        }
        using (socketFile)
        {
            if (FileStatus.Of(socketFile).Type != SocketType)
                throw new IOException($"The agent's socket in {socketDir} is not a socket.");
            var endPoint = new UnixDomainSocketEndPoint($"/proc/self/fd/{socketFile.DangerousGetHandle()}");
            for (var pause = 1; ; pause = Math.Min(pause * 2, MaxRetryMilliseconds))
            {
                if (TryConnect(endPoint, privileged) is { } socket)
                    return new AgentConnection(new NetworkStream(socket, ownsSocket: true));
                await Task.Delay(pause, cancellationToken);
            }
        }
    }

    /// <summary>One non-blocking connect: the socket, or null when the listen queue is full (EAGAIN, where a blocking connect would wait without end).</summary>
    private static Socket? TryConnect(EndPoint endPoint, Func<IDisposable>? privileged)
    {
        // A new socket each time: .NET does not take a socket back after a failed connect.
        var socket = new Socket(AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, ProtocolType.Unspecified) { Blocking = false };
        try
        {
            using (privileged?.Invoke())
                socket.Connect(endPoint);
            socket.Blocking = true;
            return socket;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock)
        {
            socket.Dispose();
            return null;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Asks the agent in <paramref name="socketDir"/> whether it answers, within <paramref name="limit"/> from the connect on.</summary>
    public static async Task<AgentReply> PingAsync(string socketDir, string machineName, TimeSpan limit, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit);
        try
        {
            await using var connection = await ConnectAsync(socketDir, timeout.Token);
            await connection.SendAsync(new AgentRequest(AgentRequest.Ping), timeout.Token);
            while (await AgentFrame.ReadAsync(connection.Stream, timeout.Token) is { } frame)
                if (frame.Kind == AgentFrame.Json)
                    return AgentReply.FromJson(frame.Payload);
            throw new IOException("The agent closed the connection without a reply.");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"The agent of machine {machineName} did not answer within {limit.TotalSeconds:0.#} s.");
        }
    }

    public Task SendAsync(AgentRequest request, CancellationToken cancellationToken) =>
        SendAsync(AgentFrame.Json, request.ToJson(), cancellationToken);

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
