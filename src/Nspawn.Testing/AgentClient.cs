using System.Text.Json;
using CliWrap;
using Nspawn.Build;
using Nspawn.Build.Agent;

namespace Nspawn.Testing;

/// <summary>
/// The host's side of a machine's agent: commands, files and calls, one connection each. Every reply comes from the
/// guest and is treated as such: frames are capped, a file read is capped, a failure becomes our own exception, and
/// each call's deadline and cancellation hold from its connect on (a guest can keep its agent's queue full).
/// </summary>
/// <param name="machine">The machine whose agent it talks to.</param>
/// <param name="socketDir">The folder of the agent's socket; by default the machine's (<see cref="AgentSetup.SocketDirOf"/>).</param>
internal sealed class AgentClient(Machine machine, string? socketDir = null)
{
    /// <summary>The largest file <see cref="ReadFileAsync"/> takes from a machine.</summary>
    private const long MaxFile = 1L << 30;

    /// <summary>
    /// Runs a command, its output to <paramref name="output"/> and <paramref name="error"/>. Past <paramref name="timeout"/>,
    /// or on cancellation, the agent kills it and all it started (its cgroup), and TimeoutException (or
    /// OperationCanceledException) is thrown; both hold from the connect on.
    /// </summary>
    public async Task<int> ExecAsync(IReadOnlyList<string> command, ExecOptions options, PipeSource input, PipeTarget output, PipeTarget error,
        TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var stdout = new ChunkStream();
        var stderr = new ChunkStream();
        var outputs = Task.WhenAll(output.CopyFromAsync(stdout, CancellationToken.None), error.CopyFromAsync(stderr, CancellationToken.None));
        int exitCode;
        try
        {
            exitCode = await ExecAsync(command, options, input, (kind, data) => (kind == AgentFrame.Stderr ? stderr : stdout).Add(data), timeout, cancellationToken);
        }
        catch
        {
            // The call's own failure is what the caller gets, not one of the targets' over what they got before it.
            stdout.Complete();
            stderr.Complete();
            await outputs.ContinueWith(_ => { }, TaskScheduler.Default);
            throw;
        }
        stdout.Complete();
        stderr.Complete();
        await outputs;
        return exitCode;
    }

    /// <summary>
    /// Runs a command and keeps its output and errors as text, decoded as their frames arrive: no pipe, task or channel
    /// between the agent's frames and the result (each was a hop to another thread per command).
    /// </summary>
    public async Task<ExecResult> ExecCapturedAsync(IReadOnlyList<string> command, ExecOptions options, PipeSource input, TimeSpan? timeout,
        CancellationToken cancellationToken)
    {
        var stdout = new Utf8Text();
        var stderr = new Utf8Text();
        var exitCode = await ExecAsync(command, options, input, (kind, data) => (kind == AgentFrame.Stderr ? stderr : stdout).Add(data), timeout, cancellationToken);
        return new ExecResult(exitCode, stdout.Finish(), stderr.Finish());
    }

    /// <summary>The call itself: each output frame goes to <paramref name="onData"/> (Stdout or Stderr, its bytes), on the thread that read it.</summary>
    private async Task<int> ExecAsync(IReadOnlyList<string> command, ExecOptions options, PipeSource input, Action<byte, byte[]> onData,
        TimeSpan? timeout, CancellationToken cancellationToken)
    {
        if (command.Count == 0)
            throw new ArgumentException("The command is empty.", nameof(command));
        foreach (var variable in options.Environment?.Keys ?? [])
            if (variable.Length == 0 || variable.Contains('='))
                throw new ArgumentException($"'{variable}' is not an environment variable name.", nameof(options));
        var hasStdin = !ReferenceEquals(input, PipeSource.Null);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout is { } limit)
            stop.CancelAfter(limit);
        await using var connection = await StartAsync();

        var feeding = hasStdin ? FeedAsync(connection, input, stop.Token) : Task.CompletedTask;
        using var forceful = new CancellationTokenSource();
        AgentReply? reply;
        using (stop.Token.Register(() =>
               {
                   // The agent kills the command's cgroup and answers; a guest that does not is cut off.
                   _ = connection.SendAsync(AgentFrame.Kill, ReadOnlyMemory<byte>.Empty, CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
                   forceful.CancelAfter(machine.StopTimeout);
               }))
        {
            try
            {
                reply = await ReadReplyAsync(connection, (kind, data) =>
                {
                    onData(kind, data);
                    return Task.CompletedTask;
                }, forceful.Token);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                reply = null;
            }
        }
        await feeding;
        if (stop.IsCancellationRequested)
        {
            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException($"'{string.Join(' ', command)}' did not finish within {timeout!.Value.TotalSeconds:0.#} s in machine {machine.Name}; it was killed there.");
        }
        return reply!.Ok ? reply.ExitCode : throw Failure(reply, $"run '{string.Join(' ', command)}'");

        // The command's timeout and cancellation hold from the connect on.
        async Task<AgentConnection> StartAsync()
        {
            try
            {
                return await OpenAsync(new AgentRequest(AgentRequest.Exec)
                {
                    Command = command, User = options.User, Environment = options.Environment, WorkingDirectory = options.WorkingDirectory,
                    HasStdin = hasStdin, TimeoutSeconds = timeout?.TotalSeconds,
                }, stop.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"'{string.Join(' ', command)}' did not start within {timeout!.Value.TotalSeconds:0.#} s in machine {machine.Name}: its agent did not take it.");
            }
        }
    }

    public async Task<byte[]> ReadFileAsync(string path, CancellationToken cancellationToken)
    {
        using var content = new MemoryStream();
        var reply = await RequestAsync(new AgentRequest(AgentRequest.Read) { Path = path }, null, (_, data) =>
        {
            if (content.Length + data.Length > MaxFile)
                throw new IOException($"{machine.Name}:{path} is larger than {MaxFile} bytes.");
            content.Write(data);
            return Task.CompletedTask;
        }, cancellationToken);
        return reply.Ok ? content.ToArray() : throw Failure(reply, $"read {path}");
    }

    public async Task WriteFileAsync(string path, byte[] content, UnixFileMode mode, string owner, string group, CancellationToken cancellationToken)
    {
        var reply = await RequestAsync(new AgentRequest(AgentRequest.Write) { Path = path, Mode = (int)mode, Owner = owner, Group = group }, async connection =>
        {
            await new FrameWriteStream(connection).WriteAsync(content, cancellationToken);
            await connection.SendAsync(AgentFrame.StdinEnd, ReadOnlyMemory<byte>.Empty, cancellationToken);
        }, null, cancellationToken);
        if (!reply.Ok)
            throw Failure(reply, $"write {path}");
    }

    /// <summary>A call of a public static method (<see cref="InvokeCall"/>); its result as JSON, or what it threw as <see cref="GuestException"/>.</summary>
    public async Task<string?> InvokeAsync(AgentRequest call, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        AgentReply reply;
        try
        {
            reply = await RequestAsync(call, null, null, limit.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"'{call.Type}.{call.Method}' did not return within {timeout.TotalSeconds:0.#} s in machine {machine.Name}.");
        }
        if (reply.Ok)
            return reply.Json;
        throw reply.ErrorKind switch
        {
            AgentReply.Guest => new GuestException(reply.ErrorType ?? "an exception", reply.Error ?? "", reply.StackTrace),
            AgentReply.Result => new NotSupportedException($"The result of '{call.Type}.{call.Method}' cannot be sent back as JSON: {reply.Error}"),
            _ => new InvalidOperationException($"Machine {machine.Name} could not call '{call.Type}.{call.Method}': {reply.ErrorType}: {reply.Error}"),
        };
    }

    /// <summary>Connects and sends <paramref name="request"/>, both within <paramref name="cancellationToken"/>.</summary>
    private async Task<AgentConnection> OpenAsync(AgentRequest request, CancellationToken cancellationToken)
    {
        // The agent's folder is root's only: this is where a test dropped to the sudo user needs root.
        var connection = await AgentConnection.ConnectAsync(socketDir ?? AgentSetup.SocketDirOf(machine.Name), cancellationToken, ProcessPrivileges.Current.Root);
        try
        {
            await connection.SendAsync(request, cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>One request: its input (sent while the reply is read), its data frames, its reply.</summary>
    private async Task<AgentReply> RequestAsync(AgentRequest request, Func<AgentConnection, Task>? send, Func<byte, byte[], Task>? onData, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(HostCommand.DefaultLimit);
        try
        {
            await using var connection = await OpenAsync(request, limit.Token);
            var sending = send is null ? Task.CompletedTask : send(connection);
            var reply = await ReadReplyAsync(connection, onData ?? ((_, _) => Task.CompletedTask), limit.Token);
            await sending;
            return reply;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"The agent of machine {machine.Name} did not answer within {HostCommand.DefaultLimit.TotalMinutes:0} minutes.");
        }
    }

    private async Task<AgentReply> ReadReplyAsync(AgentConnection connection, Func<byte, byte[], Task> onData, CancellationToken cancellationToken)
    {
        while (await AgentFrame.ReadAsync(connection.Stream, cancellationToken) is { } frame)
        {
            if (frame.Kind == AgentFrame.Json)
                return AgentReply.FromJson(frame.Payload);
            if (frame.Kind is AgentFrame.Stdout or AgentFrame.Stderr)
                await onData(frame.Kind, frame.Payload);
        }
        throw new IOException($"The agent of machine {machine.Name} closed the connection without a reply.");
    }

    private static async Task FeedAsync(AgentConnection connection, PipeSource input, CancellationToken cancellationToken)
    {
        try
        {
            await input.CopyToAsync(new FrameWriteStream(connection), cancellationToken);
            await connection.SendAsync(AgentFrame.StdinEnd, ReadOnlyMemory<byte>.Empty, cancellationToken);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
            // The command ended, or was killed, before it took all its input.
        }
    }

    /// <summary>A failure the agent reported, as the exception the API has always thrown for it.</summary>
    private Exception Failure(AgentReply reply, string what)
    {
        var message = $"Could not {what} in machine {machine.Name}: {reply.Error}";
        return reply.ErrorKind switch
        {
            AgentReply.Missing => new FileNotFoundException(message),
            AgentReply.Refused when reply.ErrorType == typeof(ArgumentException).FullName => new ArgumentException(message),
            _ => new IOException(message),
        };
    }
}
