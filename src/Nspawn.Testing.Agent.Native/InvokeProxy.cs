using System.Diagnostics;
using System.Net.Sockets;
using Nspawn.Build.Agent;

namespace Nspawn.Testing.Agent;

/// <summary>
/// InvokeAsync from the native agent: the managed agent (the runtime) is started on the first call, listening on
/// <paramref name="socketPath"/> in the agent's root-only folder, and each call's connection is passed on to it
/// byte for byte. A machine whose tests never call InvokeAsync never starts the runtime.
/// </summary>
internal sealed class InvokeProxy(IReadOnlyList<string> managedCommand, string socketPath)
{
    /// <summary>How long the runtime gets to start and listen.</summary>
    private static readonly TimeSpan StartLimit = TimeSpan.FromSeconds(60);
    private readonly SemaphoreSlim _starting = new(1, 1);
    private Process? _managed;

    public async Task<AgentReply?> ServeAsync(Connection connection, AgentRequest request, byte[] rawRequest)
    {
        Socket managed;
        try
        {
            managed = await ConnectAsync();
        }
        catch (Exception e) when (e is IOException or SocketException or InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
        {
            return Connection.Failure(new InvalidOperationException($"The agent's runtime for InvokeAsync did not start: {e.Message}"));
        }
        await using var upstream = new NetworkStream(managed, ownsSocket: true);
        await AgentFrame.WriteAsync(upstream, AgentFrame.Json, rawRequest, CancellationToken.None);
        // Both ways until either side ends: the managed agent's frames are the reply.
        var up = connection.Stream.CopyToAsync(upstream);
        var down = upstream.CopyToAsync(connection.Stream);
        await Task.WhenAny(up, down);
        return null;
    }

    private async Task<Socket> ConnectAsync()
    {
        if (TryConnect() is { } ready)
            return ready;
        await _starting.WaitAsync();
        try
        {
            if (TryConnect() is { } started)
                return started;
            if (managedCommand.Count == 0)
                throw new InvalidOperationException("the native agent was started without the managed one's command (--managed)");
            if (_managed is null || _managed.HasExited)
                _managed = Start();
            var deadline = Stopwatch.StartNew();
            for (var pause = 1; ; pause = Math.Min(pause * 2, 20))
            {
                if (TryConnect() is { } socket)
                    return socket;
                if (_managed.HasExited)
                    throw new InvalidOperationException($"'{string.Join(' ', managedCommand)}' exited with code {_managed.ExitCode}");
                if (deadline.Elapsed > StartLimit)
                    throw new TimeoutException($"it did not listen within {StartLimit.TotalSeconds:0} s");
                await Task.Delay(pause);
            }
        }
        finally
        {
            _starting.Release();
        }
    }

    private Process Start()
    {
        var start = new ProcessStartInfo(managedCommand[0]) { UseShellExecute = false };
        foreach (var arg in managedCommand.Skip(1))
            start.ArgumentList.Add(arg);
        start.ArgumentList.Add("--socket");
        start.ArgumentList.Add(socketPath);
        // Not systemd's to hear from: the unit is ready already.
        start.Environment.Remove("NOTIFY_SOCKET");
        // The tests' code gets the managed agent's heap, not the native one's small budget (AgentSetup.ManagedGen0Size).
        start.Environment["DOTNET_GCgen0size"] = "400000";
        start.Environment.Remove("DOTNET_GCRegionSize");
        return Process.Start(start) ?? throw new InvalidOperationException($"'{managedCommand[0]}' did not start");
    }

    private Socket? TryConnect()
    {
        if (!File.Exists(socketPath))
            return null;
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            return socket;
        }
        catch (SocketException)
        {
            // Not listening yet, or a socket left by a runtime that died.
            socket.Dispose();
            return null;
        }
    }
}
