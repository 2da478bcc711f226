namespace Nspawn.Testing.Agent;

/// <summary>The command's file could not be run (not found, not runnable): a shell's exit code for it and why.</summary>
internal sealed class CommandNotRunException(string message, int exitCode) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
