using System.Text.Json;
using System.Text.Json.Serialization;
using System.Xml.Linq;

namespace Nspawn.Build;

/// <summary>The JSON file that tells the tests which machines ContainerTest started (NSPAWN_MACHINES_FILE).</summary>
public static class MachinesFile
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

/// <summary>Run settings for the test host: the suite's own file, if any, with our variables in RunConfiguration/EnvironmentVariables.</summary>
public static class RunSettings
{
    public static XDocument Merge(XDocument? suiteSettings, IReadOnlyDictionary<string, string> environment)
    {
        var doc = suiteSettings is null ? new XDocument(new XElement("RunSettings")) : new XDocument(suiteSettings);
        var root = doc.Root ?? throw new InvalidOperationException("empty run settings");
        var config = Child(root, "RunConfiguration");
        var variables = Child(config, "EnvironmentVariables");
        foreach (var (name, value) in environment)
        {
            variables.Elements(name).Remove();
            variables.Add(new XElement(name, value));
        }
        return doc;
    }

    public static XDocument? Load(string? path)
    {
        if (string.IsNullOrWhiteSpace(path))
            return null;
        if (!File.Exists(path))
            throw new NspawnException(ErrorCodes.BadPath, $"The run settings file '{path}' (VSTestSetting) does not exist. Fix the path or leave it out.");
        try
        {
            return XDocument.Load(path);
        }
        catch (System.Xml.XmlException e)
        {
            throw new NspawnException(ErrorCodes.BadPath, $"The run settings file '{path}' (VSTestSetting) is not valid XML: {e.Message}");
        }
    }

    private static XElement Child(XElement parent, string name)
    {
        var child = parent.Element(name);
        if (child is null)
        {
            child = new XElement(name);
            parent.Add(child);
        }
        return child;
    }
}
