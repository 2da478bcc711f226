namespace Nspawn.Build.Agent;

/// <summary>The agent's last frame for a request. From the guest: the host checks what it uses.</summary>
internal sealed record AgentReply
{
    public const string Guest = "guest";
    public const string Result = "result";
    public const string Missing = "missing";
    public const string Refused = "refused";

    public bool Ok { get; init; }
    public int ExitCode { get; init; }
    /// <summary>Killed on request (a kill frame, the connection closed) or by the backstop timeout.</summary>
    public bool Killed { get; init; }
    /// <summary>What failed: <see cref="Guest"/> (the invoked method threw), <see cref="Result"/> (its result does not serialize), <see cref="Missing"/> (no such file), <see cref="Refused"/> (not a regular file, a bad owner), else the agent's own failure.</summary>
    public string? ErrorKind { get; init; }
    public string? ErrorType { get; init; }
    public string? Error { get; init; }
    public string? StackTrace { get; init; }
    /// <summary>An invoked method's result, as JSON.</summary>
    public string? Json { get; init; }
    /// <summary>The runtime the agent runs on (ping).</summary>
    public string? Runtime { get; init; }
}
