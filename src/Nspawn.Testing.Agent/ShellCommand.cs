using System.Diagnostics;

namespace Nspawn.Testing.Agent;

/// <summary>
/// A command started with .NET's Process: the guest's /bin/sh moves itself into the command's cgroup and becomes the
/// command (through setpriv for another user). The managed agent's way, and the native agent's where its own cannot start it.
/// </summary>
internal sealed class ShellCommand(Process process) : IStartedCommand
{
    // Moves itself into the command's cgroup ($0, when there is one), then becomes the command: a fixed script, arguments stay a list.
    private const string EnterAndExec = "if [ -n \"$0\" ]; then echo 0 > \"$0\" || exit 125; fi; exec \"$@\"";

    public Stream Input => process.StandardInput.BaseStream;

    public Stream Output => process.StandardOutput.BaseStream;

    public Stream Error => process.StandardError.BaseStream;

    /// <summary>Starts it (Win32Exception where it cannot, as for a working directory that is not there).</summary>
    public static ShellCommand Start(CommandStart command, CommandCgroup? cgroup)
    {
        var start = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = command.WorkingDirectory,
        };
        foreach (var arg in new[] { "-c", EnterAndExec, cgroup?.ProcsFile ?? "" })
            start.ArgumentList.Add(arg);
        start.Environment.Clear();
        foreach (var (name, value) in command.Environment)
            start.Environment[name] = value;
        if (command.Account is { } account)
            foreach (var arg in new[] { "setpriv", $"--reuid={account.Uid}", $"--regid={account.Gid}", account.Known ? "--init-groups" : "--clear-groups", "--" })
                start.ArgumentList.Add(arg);
        foreach (var arg in command.Command)
            start.ArgumentList.Add(arg);
        return new ShellCommand(Process.Start(start)!);
    }

    public async Task<int> ExitAsync()
    {
        await process.WaitForExitAsync();
        return process.ExitCode;
    }

    public void CloseInput() => process.StandardInput.Close();

    public void KillTree()
    {
        try
        {
            if (!process.HasExited)
                process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
    }

    public void Dispose() => process.Dispose();
}
