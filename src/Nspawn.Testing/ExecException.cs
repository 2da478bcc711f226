namespace Nspawn.Testing;

/// <summary>A command ran in a machine and exited with a code other than 0.</summary>
public sealed class ExecException(IReadOnlyList<string> command, ExecResult result)
    : Exception($"'{string.Join(' ', command)}' exited with code {result.ExitCode}.\nstdout:\n{result.StandardOutput.TrimEnd()}\nstderr:\n{result.StandardError.TrimEnd()}")
{
    public ExecResult Result { get; } = result;
}
