using System.Text;
using System.Text.Json;

namespace Nspawn.Build.Agent;

/// <summary>
/// A command run by a machine's agent for the host's own needs (saving the guest's journal): it runs inside the
/// guest, under the guest's systemd, seccomp filter and user namespace, never as a program the host starts.
/// </summary>
internal static class AgentCommand
{
    /// <summary>Runs <paramref name="command"/>, giving each line of its output to <paramref name="onLine"/>; past <paramref name="limit"/> the agent kills it.</summary>
    public static async Task<(int ExitCode, string StandardError)> RunLinesAsync(string machineName, IReadOnlyList<string> command, Action<string> onLine,
        TimeSpan limit, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit);
        var stderr = new StringBuilder();
        var pending = new StringBuilder();
        try
        {
            await using var connection = await AgentConnection.ConnectAsync(AgentSetup.SocketDirOf(machineName), timeout.Token);
            await connection.SendAsync(new AgentRequest(AgentRequest.Exec) { Command = command, TimeoutSeconds = limit.TotalSeconds }, timeout.Token);
            while (await AgentFrame.ReadAsync(connection.Stream, timeout.Token) is { } frame)
            {
                if (frame.Kind == AgentFrame.Json)
                {
                    var reply = AgentReply.FromJson(frame.Payload);
                    if (pending.Length > 0)
                        onLine(pending.ToString());
                    return reply.Ok ? (reply.ExitCode, stderr.ToString()) : (-1, reply.Error ?? "the agent could not run it");
                }
                var text = Encoding.UTF8.GetString(frame.Payload);
                if (frame.Kind == AgentFrame.Stderr)
                {
                    // Enough to say why; a guest cannot fill the host's memory through it.
                    if (stderr.Length < 64 * 1024)
                        stderr.Append(text);
                    continue;
                }
                pending.Append(text);
                var lines = pending.ToString().Split('\n');
                for (var i = 0; i < lines.Length - 1; i++)
                    onLine(lines[i]);
                pending.Clear().Append(lines[^1]);
            }
            return (-1, "the agent closed the connection without a reply");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // Closing the connection makes the agent kill the command.
            return (-1, $"it did not finish within {limit.TotalSeconds:0.#} s");
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or InvalidDataException or JsonException)
        {
            return (-1, e.Message);
        }
    }
}
