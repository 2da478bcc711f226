using System.Text.Json;

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

    /// <summary>Its frame's JSON, written by hand (<see cref="JsonFields"/>).</summary>
    public byte[] ToJson() => JsonFields.ToBytes(w =>
    {
        w.WriteStartObject();
        w.WriteBoolean(nameof(Ok), Ok);
        w.WriteNumber(nameof(ExitCode), ExitCode);
        w.WriteBoolean(nameof(Killed), Killed);
        JsonFields.WriteIf(w, nameof(ErrorKind), ErrorKind);
        JsonFields.WriteIf(w, nameof(ErrorType), ErrorType);
        JsonFields.WriteIf(w, nameof(Error), Error);
        JsonFields.WriteIf(w, nameof(StackTrace), StackTrace);
        JsonFields.WriteIf(w, nameof(Json), Json);
        JsonFields.WriteIf(w, nameof(Runtime), Runtime);
        w.WriteEndObject();
    });

    /// <summary>A reply from its frame: from the guest, so any value of the wrong kind is a <see cref="JsonException"/>.</summary>
    public static AgentReply FromJson(ReadOnlySpan<byte> json)
    {
        var r = JsonFields.Object(json);
        var reply = new AgentReply();
        while (JsonFields.Next(ref r) is { } name)
            reply = name switch
            {
                nameof(Ok) => reply with { Ok = JsonFields.Bool(ref r) },
                nameof(ExitCode) => reply with { ExitCode = JsonFields.Int(ref r) },
                nameof(Killed) => reply with { Killed = JsonFields.Bool(ref r) },
                nameof(ErrorKind) => reply with { ErrorKind = JsonFields.String(ref r) },
                nameof(ErrorType) => reply with { ErrorType = JsonFields.String(ref r) },
                nameof(Error) => reply with { Error = JsonFields.String(ref r) },
                nameof(StackTrace) => reply with { StackTrace = JsonFields.String(ref r) },
                nameof(Json) => reply with { Json = JsonFields.String(ref r) },
                nameof(Runtime) => reply with { Runtime = JsonFields.String(ref r) },
                _ => JsonFields.Skipped(ref r, reply),
            };
        return reply;
    }
}
