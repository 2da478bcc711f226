using System.Text;
using System.Text.Json;

namespace Nspawn.Build;

/// <summary>The JSON file that tells the tests which machines ContainerTest started (NSPAWN_MACHINES_FILE).</summary>
internal static class MachinesFile
{
    // Written and read by hand (MachineJson): the test host reads it on a test's first call to a machine.
    public static string Serialize(IReadOnlyList<Machine> machines, NetworkMode? mode = null, PrivateNetwork? network = null) =>
        Encoding.UTF8.GetString(JsonFields.ToBytes(w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("machines");
            foreach (var machine in machines)
                MachineJson.WriteMachine(w, machine);
            w.WriteEndArray();
            w.WriteString("networkMode", (mode ?? Settings.Network.Default).ToString());
            if (network is not null)
            {
                w.WriteStartObject("network");
                w.WriteString("bridge", network.Bridge);
                w.WriteString("subnet", network.Subnet);
                w.WriteBoolean("outbound", network.Outbound);
                // For readers other than ours (a script, a test in another language): the machines' way out.
                w.WriteString("gateway", network.Gateway);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }, indented: true));

    public static IReadOnlyList<Machine> Deserialize(string json) => Read(json).Machines;

    /// <summary>The machines' network mode and, when private, the network.</summary>
    public static (NetworkMode Mode, PrivateNetwork? Network) DeserializeNetwork(string json)
    {
        var document = Read(json);
        return (document.Mode, document.Network);
    }

    public static string SerializeOne(Machine machine) => Encoding.UTF8.GetString(JsonFields.ToBytes(w => MachineJson.WriteMachine(w, machine), indented: true));

    public static Machine DeserializeOne(string json)
    {
        var r = JsonFields.Object(Encoding.UTF8.GetBytes(json));
        return MachineJson.ReadMachine(ref r);
    }

    private static (IReadOnlyList<Machine> Machines, NetworkMode Mode, PrivateNetwork? Network) Read(string json)
    {
        var r = JsonFields.Object(Encoding.UTF8.GetBytes(json));
        var (machines, mode, network) = (new List<Machine>(), Settings.Network.Default, (PrivateNetwork?)null);
        while (JsonFields.Next(ref r) is { } name)
            switch (name)
            {
                case "machines" when r.TokenType == JsonTokenType.StartArray:
                    while (r.Read() && r.TokenType != JsonTokenType.EndArray)
                        machines.Add(MachineJson.ReadMachine(ref r));
                    break;
                case "networkMode" when r.TokenType != JsonTokenType.Null:
                    mode = Enum.TryParse(JsonFields.RequiredString(ref r), ignoreCase: true, out NetworkMode m) && m is NetworkMode.Host or NetworkMode.Private or NetworkMode.None
                        ? m : throw new JsonException("networkMode is not Host, Private or None.");
                    break;
                case "network" when r.TokenType == JsonTokenType.StartObject:
                    string? bridge = null, subnet = null;
                    var outbound = false;
                    while (JsonFields.Next(ref r) is { } field)
                        switch (field)
                        {
                            case "bridge": bridge = JsonFields.String(ref r); break;
                            case "subnet": subnet = JsonFields.String(ref r); break;
                            case "outbound": outbound = JsonFields.Bool(ref r); break;
                            default: JsonFields.Skip(ref r); break;
                        }
                    network = new PrivateNetwork(bridge ?? throw new JsonException("The network has no bridge."), subnet ?? throw new JsonException("The network has no subnet."), outbound);
                    break;
                default:
                    JsonFields.Skip(ref r);
                    break;
            }
        return (machines, mode, network);
    }

    /// <summary>The variables the test host gets: the first machine by name and leader PID, and the file that lists them all.</summary>
    public static IReadOnlyDictionary<string, string> Environment(IReadOnlyList<Machine> machines, string file) => new Dictionary<string, string>
    {
        ["NSPAWN_MACHINE"] = machines[0].Name,
        ["NSPAWN_LEADER_PID"] = machines[0].LeaderPid.ToString(),
        ["NSPAWN_MACHINES_FILE"] = file,
    };
}
