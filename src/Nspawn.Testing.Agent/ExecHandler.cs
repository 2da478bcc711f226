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
    private const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    // Moves itself into the command's cgroup ($0, when there is one), then becomes the command: a fixed script, arguments stay a list.
    private const string EnterAndExec = "if [ -n \"$0\" ]; then echo 0 > \"$0\" || exit 125; fi; exec \"$@\"";

    public static async Task<AgentReply> RunAsync(Connection connection, AgentRequest request)
    {
        if (request.Command is not { Count: > 0 } command)
            throw new ArgumentException("The command is empty.");
        var account = request.User is null ? null : Account.Find(request.User);
        using var cgroup = CommandCgroup.Create();
        var start = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = request.WorkingDirectory ?? "/",
        };
        foreach (var arg in new[] { "-c", EnterAndExec, cgroup?.ProcsFile ?? "" })
            start.ArgumentList.Add(arg);
        start.Environment.Clear();
        start.Environment["PATH"] = DefaultPath;
        if (account is not null)
        {
            // As systemd does for a service with User=.
            (start.Environment["HOME"], start.Environment["USER"], start.Environment["LOGNAME"], start.Environment["SHELL"]) = (account.Home, account.Name, account.Name, account.Shell);
            foreach (var arg in new[] { "setpriv", $"--reuid={account.Uid}", $"--regid={account.Gid}", account.Known ? "--init-groups" : "--clear-groups", "--" })
                start.ArgumentList.Add(arg);
        }
        foreach (var (name, value) in request.Environment ?? new Dictionary<string, string>())
            start.Environment[name] = value;
        foreach (var arg in command)
            start.ArgumentList.Add(arg);

        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (Win32Exception e)
        {
            // As systemd reports a service it could not start (200/CHDIR and the like).
            await connection.SendAsync(AgentFrame.Stderr, Encoding.UTF8.GetBytes($"Failed to start '{command[0]}' in {start.WorkingDirectory}: {e.Message}\n"));
            return new AgentReply { Ok = true, ExitCode = 200 };
        }
        using (process)
        {
            if (!request.HasStdin)
                process.StandardInput.Close();
            var stdout = PumpAsync(process.StandardOutput.BaseStream, connection, AgentFrame.Stdout);
            var stderr = PumpAsync(process.StandardError.BaseStream, connection, AgentFrame.Stderr);
            var ended = new CancellationTokenSource();
            var killRequested = ReadInputAsync(connection, process, ended.Token);
            var backstop = Task.Delay(request.TimeoutSeconds is { } t ? TimeSpan.FromSeconds(t + 5) : Timeout.InfiniteTimeSpan, ended.Token);
            var exit = process.WaitForExitAsync();
            var first = await Task.WhenAny(exit, killRequested, backstop);
            var killed = first == backstop || (first == killRequested && killRequested.Result);
            ended.Cancel();
            // What the command left behind goes with it, as when a service's main process ends.
            cgroup?.Kill();
            try
            {
                if (!process.HasExited)
                    process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }
            await process.WaitForExitAsync();
            await Task.WhenAny(Task.WhenAll(stdout, stderr), Task.Delay(TimeSpan.FromSeconds(5)));
            return new AgentReply { Ok = true, ExitCode = process.ExitCode, Killed = killed };
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
            var start = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(":");
            using var process = Process.Start(start)!;
            process.StandardInput.Close();
            await Task.WhenAll(process.StandardOutput.BaseStream.CopyToAsync(Stream.Null), process.StandardError.BaseStream.CopyToAsync(Stream.Null), process.WaitForExitAsync(),
                Task.Delay(1));
        }
        catch (Exception e) when (e is Win32Exception or IOException or InvalidOperationException)
        {
            // A guest without /bin/sh: its commands will say so.
        }
    }

    /// <summary>Standard input from the host; true when the host asked for a kill or went away.</summary>
    private static async Task<bool> ReadInputAsync(Connection connection, Process process, CancellationToken ended)
    {
        var stdin = process.StandardInput.BaseStream;
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
                        process.StandardInput.Close();
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
        var buffer = new byte[64 * 1024];
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
}
