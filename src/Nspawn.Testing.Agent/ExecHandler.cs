using System.Buffers;
using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using Nspawn.Build.Agent;

namespace Nspawn.Testing.Agent;

/// <summary>
/// Runs a command as a service of the guest would run (a clean environment, the user's identity, its own cgroup),
/// streams its output, and kills all it started when it ends, is killed, or outlives its time limit.
/// </summary>
internal static class ExecHandler
{
    /// <summary>
    /// The native agent's own start (its cgroup given), or null where it cannot start this one: then .NET's Process
    /// and the guest's /bin/sh start it (<see cref="ShellCommand"/>). The managed agent has none.
    /// </summary>
    public static Func<CommandStart, CommandCgroup, IServedCommand?>? DirectStart { get; set; }

    /// <summary>
    /// How long the first process may take to end once killed: SIGKILL ends it at once, unless it is stuck in the
    /// kernel (uninterruptible sleep); then the host gets an error, not a call that never returns.
    /// </summary>
    public static readonly TimeSpan KillGrace = TimeSpan.FromSeconds(30);

    public static async Task<AgentReply> RunAsync(Connection connection, AgentRequest request)
    {
        if (request.Command is not { Count: > 0 } command)
            throw new ArgumentException("The command is empty.");
        var plan = CommandStart.Of(command, request);
        using var cgroup = CommandCgroup.Create();

        IServedCommand? direct;
        IStartedCommand? process;
        try
        {
            (direct, process) = Start(plan, cgroup);
        }
        catch (Win32Exception e)
        {
            // As systemd reports a service it could not start (200/CHDIR and the like).
            await connection.SendAsync(AgentFrame.Stderr, Encoding.UTF8.GetBytes($"Failed to start '{command[0]}' in {plan.WorkingDirectory}: {e.Message}\n"));
            return new AgentReply { Ok = true, ExitCode = 200 };
        }
        catch (CommandNotRunException e)
        {
            // As a shell reports a command it cannot run: 127 not found, 126 not runnable.
            await connection.SendAsync(AgentFrame.Stderr, Encoding.UTF8.GetBytes($"{command[0]}: {e.Message}\n"));
            return new AgentReply { Ok = true, ExitCode = e.ExitCode };
        }
        if (direct is not null)
        {
            using (direct)
                return await direct.ServeAsync(connection, request, cgroup);
        }
        Debug.Assert(process is not null);
        using (process)
        {
            var stdin = process.Input;
            if (!request.HasStdin)
                process.CloseInput();
            var stdout = PumpAsync(process.Output, connection, AgentFrame.Stdout);
            var stderr = PumpAsync(process.Error, connection, AgentFrame.Stderr);
            var ended = new CancellationTokenSource();
            var killRequested = ReadInputAsync(connection, process, stdin, ended.Token);
            var backstop = Task.Delay(request.TimeoutSeconds is { } t ? TimeSpan.FromSeconds(t + 5) : Timeout.InfiniteTimeSpan, ended.Token);
            var exit = process.ExitAsync();
            var first = await Task.WhenAny(exit, killRequested, backstop);
            var killed = first == backstop || (first == killRequested && killRequested.Result);
            ended.Cancel();
            // The first process first, should it still run, and its end awaited (bounded): only then the cgroup's
            // emptiness is checked, which a shell killed before it moved in could otherwise join once kept for the next command.
            process.KillTree();
            int? exitCode;
            try
            {
                exitCode = await exit.WaitAsync(KillGrace);
            }
            catch (TimeoutException)
            {
                exitCode = null;
            }
            // What the command left behind goes with it, as when a service's main process ends.
            cgroup?.Kill();
            if (exitCode is null)
                throw new TimeoutException($"The command's first process did not end within {KillGrace.TotalSeconds:0} s of its kill (stuck in the kernel?).");
            // Its output's last bytes; a pipe that a process outside the cgroup holds open is given up after 5 s (no timer where both ended).
            var drained = Task.WhenAll(stdout, stderr);
            if (!drained.IsCompleted)
                await Task.WhenAny(drained, Task.Delay(TimeSpan.FromSeconds(5)));
            return new AgentReply { Ok = true, ExitCode = exitCode.Value, Killed = killed };
        }
    }

    /// <summary>
    /// Starts and reaps one trivial command as <see cref="RunAsync"/> does (pipes, the child's reaper, pool threads, the timer), so
    /// that a machine's first command finds them ready.
    /// </summary>
    public static async Task WarmAsync()
    {
        try
        {
            using var cgroup = CommandCgroup.Create();
            var plan = new CommandStart(["/bin/sh", "-c", ":"], new Dictionary<string, string>(), "/", null);
            var (direct, started) = Start(plan, cgroup);
            if (direct is not null)
            {
                using (direct)
                    await direct.ServeAsync(null, new AgentRequest(AgentRequest.Exec), cgroup);
                return;
            }
            using var process = started!;
            process.CloseInput();
            await Task.WhenAll(process.Output.CopyToAsync(Stream.Null), process.Error.CopyToAsync(Stream.Null), process.ExitAsync(), Task.Delay(1));
            cgroup?.Kill();
        }
        catch (Exception e) when (e is Win32Exception or IOException or InvalidOperationException or CommandNotRunException or TimeoutException)
        {
            // A guest without /bin/sh: its commands will say so.
        }
    }

    /// <summary>The native agent's own start where it has one for this command, else .NET's Process through /bin/sh: one of the two.</summary>
    private static (IServedCommand? Direct, IStartedCommand? Shell) Start(CommandStart plan, CommandCgroup? cgroup) =>
        (cgroup is null ? null : DirectStart?.Invoke(plan, cgroup)) is { } direct
            ? (direct, null)
            : (null, ShellCommand.Start(plan, cgroup is { Usable: true } ? cgroup : null));

    /// <summary>Standard input from the host; true when the host asked for a kill or went away.</summary>
    private static async Task<bool> ReadInputAsync(Connection connection, IStartedCommand process, Stream stdin, CancellationToken ended)
    {
        try
        {
            while (await AgentFrame.ReadAsync(connection.Stream, ended) is { } frame)
                switch (frame.Kind)
                {
                    case AgentFrame.Stdin:
                        try
                        {
                            await stdin.WriteAsync(frame.Payload, ended);
                            await stdin.FlushAsync(ended);
                        }
                        catch (IOException)
                        {
                            // The command closed its input: the rest is dropped, as a pipe would.
                        }
                        break;
                    case AgentFrame.StdinEnd:
                        process.CloseInput();
                        break;
                    case AgentFrame.Kill:
                        return true;
                }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ObjectDisposedException)
        {
        }
        return !ended.IsCancellationRequested;
    }

    private static async Task PumpAsync(Stream output, Connection connection, byte kind)
    {
        // Pooled: two new 64 KiB buffers per command would collect the native agent's small heap every few commands.
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            var sending = true;
            int n;
            while ((n = await output.ReadAsync(buffer)) > 0)
            {
                if (!sending)
                    continue;
                try
                {
                    await connection.SendAsync(kind, buffer.AsMemory(0, n));
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException)
                {
                    // The host is gone: drain the pipe so that the command never blocks on it.
                    sending = false;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
