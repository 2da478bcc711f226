namespace Nspawn.Testing;

/// <summary>How to run a command in a machine. Every member is optional.</summary>
public sealed record ExecOptions
{
    /// <summary>A user of the machine (name or number); root by default.</summary>
    public string? User { get; init; }
    /// <summary>Variables for the command; it starts from a clean environment, as a service does.</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }
    public string? WorkingDirectory { get; init; }
    public string? StandardInput { get; init; }
    /// <summary>Past it, the command and everything it started are killed inside the machine and TimeoutException is thrown.</summary>
    public TimeSpan? Timeout { get; init; }
    /// <summary>Gets each line of output (standard output and error) as it comes, for a test log: one line at a time, never two calls at once.</summary>
    public Action<string>? OnOutput { get; init; }
}
