namespace Nspawn.Build.Agent;

/// <summary>What the host asks the agent: one operation and what it needs.</summary>
internal sealed record AgentRequest(string Op)
{
    public const string Ping = "ping";
    public const string Exec = "exec";
    public const string Read = "read";
    public const string Write = "write";
    public const string Invoke = "invoke";

    // exec
    public IReadOnlyList<string>? Command { get; init; }
    public string? User { get; init; }
    public IReadOnlyDictionary<string, string>? Environment { get; init; }
    public string? WorkingDirectory { get; init; }
    /// <summary>Standard input comes as frames (then its end); else the command gets none.</summary>
    public bool HasStdin { get; init; }
    /// <summary>A backstop inside the machine, should the host die before it kills the command.</summary>
    public double? TimeoutSeconds { get; init; }

    // read, write
    public string? Path { get; init; }
    public int Mode { get; init; }
    public string? Owner { get; init; }
    public string? Group { get; init; }

    // invoke
    public string? Assembly { get; init; }
    public string? Type { get; init; }
    public string? Method { get; init; }
    public IReadOnlyList<string>? ParameterTypes { get; init; }
    public IReadOnlyList<string>? Arguments { get; init; }
}
