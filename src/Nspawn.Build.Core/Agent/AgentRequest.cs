using System.Text.Json;

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

    /// <summary>Its frame's JSON, written by hand (<see cref="JsonFields"/>).</summary>
    public byte[] ToJson() => JsonFields.ToBytes(w =>
    {
        w.WriteStartObject();
        w.WriteString(nameof(Op), Op);
        JsonFields.WriteStrings(w, nameof(Command), Command);
        JsonFields.WriteIf(w, nameof(User), User);
        JsonFields.WriteStringMap(w, nameof(Environment), Environment);
        JsonFields.WriteIf(w, nameof(WorkingDirectory), WorkingDirectory);
        w.WriteBoolean(nameof(HasStdin), HasStdin);
        if (TimeoutSeconds is { } timeout)
            w.WriteNumber(nameof(TimeoutSeconds), timeout);
        JsonFields.WriteIf(w, nameof(Path), Path);
        w.WriteNumber(nameof(Mode), Mode);
        JsonFields.WriteIf(w, nameof(Owner), Owner);
        JsonFields.WriteIf(w, nameof(Group), Group);
        JsonFields.WriteIf(w, nameof(Assembly), Assembly);
        JsonFields.WriteIf(w, nameof(Type), Type);
        JsonFields.WriteIf(w, nameof(Method), Method);
        JsonFields.WriteStrings(w, nameof(ParameterTypes), ParameterTypes);
        JsonFields.WriteStrings(w, nameof(Arguments), Arguments);
        w.WriteEndObject();
    });

    /// <summary>A request from its frame; from the host, but checked as any input is (<see cref="JsonException"/>).</summary>
    public static AgentRequest FromJson(ReadOnlySpan<byte> json)
    {
        var r = JsonFields.Object(json);
        string? op = null;
        var request = new AgentRequest("");
        while (JsonFields.Next(ref r) is { } name)
            request = name switch
            {
                nameof(Op) => request with { Op = op = JsonFields.RequiredString(ref r) },
                nameof(Command) => request with { Command = JsonFields.Strings(ref r) },
                nameof(User) => request with { User = JsonFields.String(ref r) },
                nameof(Environment) => request with { Environment = JsonFields.StringMap(ref r) },
                nameof(WorkingDirectory) => request with { WorkingDirectory = JsonFields.String(ref r) },
                nameof(HasStdin) => request with { HasStdin = JsonFields.Bool(ref r) },
                nameof(TimeoutSeconds) => request with { TimeoutSeconds = JsonFields.Double(ref r) },
                nameof(Path) => request with { Path = JsonFields.String(ref r) },
                nameof(Mode) => request with { Mode = JsonFields.Int(ref r) },
                nameof(Owner) => request with { Owner = JsonFields.String(ref r) },
                nameof(Group) => request with { Group = JsonFields.String(ref r) },
                nameof(Assembly) => request with { Assembly = JsonFields.String(ref r) },
                nameof(Type) => request with { Type = JsonFields.String(ref r) },
                nameof(Method) => request with { Method = JsonFields.String(ref r) },
                nameof(ParameterTypes) => request with { ParameterTypes = JsonFields.Strings(ref r) },
                nameof(Arguments) => request with { Arguments = JsonFields.Strings(ref r) },
                _ => JsonFields.Skipped(ref r, request),
            };
        return op is null ? throw new JsonException("The request has no Op.") : request;
    }
}
