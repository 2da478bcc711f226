namespace Nspawn.Testing;

/// <summary>What a command in a machine returned.</summary>
public sealed record ExecResult(int ExitCode, string StandardOutput, string StandardError);
