using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nspawn.Build;

/// <summary>
/// A <see cref="Machine"/> as JSON, by hand (<see cref="JsonFields"/>): the test host reads the machines file on a
/// test's first call. The serializer uses it too, through the type's attribute (a machine record holds one). The
/// fields and their forms are those the serializer wrote (camelCase, a time span as "c", the enum as a number):
/// records written by another version of the package still read.
/// </summary>
internal sealed class MachineJson : JsonConverter<Machine>
{
    public override Machine Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => ReadMachine(ref reader);

    public override void Write(Utf8JsonWriter writer, Machine value, JsonSerializerOptions options) => WriteMachine(writer, value);

    /// <summary>
    /// The machine whose object the reader is on. A field left out keeps the record's default (null for the
    /// positional ones: a machine record reports them missing).
    /// </summary>
    public static Machine ReadMachine(ref Utf8JsonReader r)
    {
        if (r.TokenType != JsonTokenType.StartObject)
            throw new JsonException($"Expected a machine (an object), found {r.TokenType}.");
        var m = new Machine(null!, null!, null!, null!, 0, 0, 0, 0, null, null, null!);
        while (JsonFields.Next(ref r) is { } name)
            m = name switch
            {
                "logicalName" => m with { LogicalName = JsonFields.String(ref r)! },
                "name" => m with { Name = JsonFields.String(ref r)! },
                "image" => m with { Image = JsonFields.String(ref r)! },
                "imageDir" => m with { ImageDir = JsonFields.String(ref r)! },
                "leaderPid" => m with { LeaderPid = JsonFields.Int(ref r) },
                "leaderStartTime" => m with { LeaderStartTime = JsonFields.ULong(ref r) },
                "nspawnPid" => m with { NspawnPid = JsonFields.Int(ref r) },
                "nspawnStartTime" => m with { NspawnStartTime = JsonFields.ULong(ref r) },
                "snapshot" => m with { Snapshot = JsonFields.String(ref r) },
                "unit" => m with { Unit = JsonFields.String(ref r) },
                "cgroups" => m with { Cgroups = JsonFields.Strings(ref r)! },
                "stopTimeout" => m with { StopTimeout = JsonFields.TimeSpan(ref r) },
                "bootTimeout" => m with { BootTimeout = JsonFields.TimeSpan(ref r) },
                "address" => m with { Address = JsonFields.String(ref r) },
                "network" => m with { Network = JsonFields.String(ref r) },
                "writableBinds" => m with { WritableBinds = JsonFields.Strings(ref r)! },
                "started" => m with { Started = JsonFields.DateTime(ref r) },
                "consoleFile" => m with { ConsoleFile = JsonFields.String(ref r) },
                "resultsDir" => m with { ResultsDir = JsonFields.String(ref r) },
                "keepLogs" => m with { KeepLogs = KeepLogsOf(ref r) },
                "keepOnFailure" => m with { KeepOnFailure = JsonFields.Bool(ref r) },
                "agent" => m with { Agent = JsonFields.String(ref r) },
                "agentRuntime" => m with { AgentRuntime = JsonFields.String(ref r) },
                "agentProblem" => m with { AgentProblem = JsonFields.String(ref r) },
                "uidShift" => m with { UidShift = JsonFields.UInt(ref r) },
                "codeDir" => m with { CodeDir = JsonFields.String(ref r) },
                _ => JsonFields.Skipped(ref r, m),
            };
        return m;
    }

    public static void WriteMachine(Utf8JsonWriter w, Machine m)
    {
        w.WriteStartObject();
        JsonFields.WriteIf(w, "logicalName", m.LogicalName);
        JsonFields.WriteIf(w, "name", m.Name);
        JsonFields.WriteIf(w, "image", m.Image);
        JsonFields.WriteIf(w, "imageDir", m.ImageDir);
        w.WriteNumber("leaderPid", m.LeaderPid);
        w.WriteNumber("leaderStartTime", m.LeaderStartTime);
        w.WriteNumber("nspawnPid", m.NspawnPid);
        w.WriteNumber("nspawnStartTime", m.NspawnStartTime);
        JsonFields.WriteIf(w, "snapshot", m.Snapshot);
        JsonFields.WriteIf(w, "unit", m.Unit);
        JsonFields.WriteStrings(w, "cgroups", m.Cgroups);
        w.WriteString("stopTimeout", m.StopTimeout.ToString("c"));
        w.WriteString("bootTimeout", m.BootTimeout.ToString("c"));
        JsonFields.WriteIf(w, "address", m.Address);
        JsonFields.WriteIf(w, "network", m.Network);
        JsonFields.WriteStrings(w, "writableBinds", m.WritableBinds);
        w.WriteString("started", m.Started);
        JsonFields.WriteIf(w, "consoleFile", m.ConsoleFile);
        JsonFields.WriteIf(w, "resultsDir", m.ResultsDir);
        w.WriteNumber("keepLogs", (int)m.KeepLogs);
        w.WriteBoolean("keepOnFailure", m.KeepOnFailure);
        JsonFields.WriteIf(w, "agent", m.Agent);
        JsonFields.WriteIf(w, "agentRuntime", m.AgentRuntime);
        JsonFields.WriteIf(w, "agentProblem", m.AgentProblem);
        if (m.UidShift is { } shift)
            w.WriteNumber("uidShift", shift);
        JsonFields.WriteIf(w, "codeDir", m.CodeDir);
        w.WriteEndObject();
    }

    private static KeepLogs KeepLogsOf(ref Utf8JsonReader r)
    {
        var value = (KeepLogs)JsonFields.Int(ref r);
        return value is KeepLogs.Failure or KeepLogs.Always or KeepLogs.Never ? value : throw new JsonException("keepLogs is not 0, 1 or 2.");
    }
}
