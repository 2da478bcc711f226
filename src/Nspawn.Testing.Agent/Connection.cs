using System.Net.Sockets;
using System.Text.Json;
using Nspawn.Build.Agent;

namespace Nspawn.Testing.Agent;

/// <summary>One connection, one request: reads it, runs it, sends its data and its reply.</summary>
internal sealed class Connection(NetworkStream stream)
{
    private readonly SemaphoreSlim _write = new(1, 1);

    public NetworkStream Stream { get; } = stream;

    public static async Task ServeAsync(Socket socket, Listener.InvokeRoute invoke)
    {
        await using var stream = new NetworkStream(socket, ownsSocket: true);
        var connection = new Connection(stream);
        try
        {
            if (await AgentFrame.ReadAsync(stream, CancellationToken.None) is not { Kind: AgentFrame.Json } first)
                return;
            var request = AgentRequest.FromJson(first.Payload);
            // A call may start the InvokeAsync host (a process start) and runs the test's code: never on an accepting thread.
            if (request.Op == AgentRequest.Invoke)
                await Task.Yield();
            AgentReply? reply;
            try
            {
                reply = request.Op switch
                {
                    AgentRequest.Ping => new AgentReply { Ok = true, Runtime = Environment.Version.ToString() },
                    AgentRequest.Exec => await ExecHandler.RunAsync(connection, request),
                    AgentRequest.Read => await FileHandler.ReadAsync(connection, request),
                    AgentRequest.Write => await FileHandler.WriteAsync(connection, request),
                    AgentRequest.Invoke => await invoke(connection, request, first.Payload),
                    _ => Failure(new NotSupportedException($"Unknown operation '{request.Op}'.")),
                };
            }
            catch (Exception e)
            {
                reply = Failure(e);
            }
            if (reply is not null)
                await connection.SendAsync(AgentFrame.Json, reply.ToJson());
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidDataException)
        {
            // The host went away: nothing to answer.
        }
    }

    public static AgentReply Failure(Exception e, string? kind = null) =>
        new() { ErrorKind = kind, ErrorType = e.GetType().FullName, Error = e.Message, StackTrace = e.StackTrace };

    public async Task SendAsync(byte kind, ReadOnlyMemory<byte> payload)
    {
        await _write.WaitAsync();
        try
        {
            await AgentFrame.WriteAsync(Stream, kind, payload, CancellationToken.None);
        }
        finally
        {
            _write.Release();
        }
    }
}
