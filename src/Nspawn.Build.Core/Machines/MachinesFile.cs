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
        TypeInfoResolver = System.Text.Json.Serialization.Metadata.JsonTypeInfoResolver.Combine(StateJson.Default, new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver()),
    };

    /// <summary>The machines, and their network (NspawnNetwork's default when not given): the private one a test's own machine joins by default.</summary>
    internal sealed record Document(IReadOnlyList<Machine> Machines, [property: JsonConverter(typeof(JsonStringEnumConverter<NetworkMode>))] NetworkMode? NetworkMode = null, PrivateNetwork? Network = null);

    public static string Serialize(IReadOnlyList<Machine> machines, NetworkMode? mode = null, PrivateNetwork? network = null) =>
        JsonSerializer.Serialize(new Document(machines, mode ?? Settings.Network.Default, network), JsonOptions);

    public static IReadOnlyList<Machine> Deserialize(string json) => JsonSerializer.Deserialize<Document>(json, JsonOptions)?.Machines ?? [];

    /// <summary>The machines' network mode and, when private, the network.</summary>
    public static (NetworkMode Mode, PrivateNetwork? Network) DeserializeNetwork(string json) =>
        JsonSerializer.Deserialize<Document>(json, JsonOptions) is { } d ? (d.NetworkMode ?? Settings.Network.Default, d.Network) : (Settings.Network.Default, null);

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
