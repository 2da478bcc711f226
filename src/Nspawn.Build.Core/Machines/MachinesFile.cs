using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nspawn.Build;

/// <summary>The JSON file that tells the tests which machines ContainerTest started (NSPAWN_MACHINES_FILE).</summary>
internal static class MachinesFile
{
    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private sealed record Document(IReadOnlyList<Machine> Machines);

    public static string Serialize(IReadOnlyList<Machine> machines) => JsonSerializer.Serialize(new Document(machines), JsonOptions);

    public static IReadOnlyList<Machine> Deserialize(string json) => JsonSerializer.Deserialize<Document>(json, JsonOptions)?.Machines ?? [];

    public static string SerializeOne(Machine machine) => JsonSerializer.Serialize(machine, JsonOptions);

    public static Machine DeserializeOne(string json) => JsonSerializer.Deserialize<Machine>(json, JsonOptions)!;

    /// <summary>The variables the test host gets: the first machine by name and leader PID, and the file that lists them all.</summary>
    public static IReadOnlyDictionary<string, string> Environment(IReadOnlyList<Machine> machines, string file) => new Dictionary<string, string>
    {
        ["NSPAWN_MACHINE"] = machines[0].Name,
        ["NSPAWN_LEADER_PID"] = machines[0].LeaderPid.ToString(),
        ["NSPAWN_MACHINES_FILE"] = file,
    };
}
