using System.Xml.Linq;

namespace Nspawn.Build;

/// <summary>Run settings for the test host: the suite's own file, if any, with our variables in RunConfiguration/EnvironmentVariables.</summary>
internal static class RunSettings
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
