using System.Globalization;
using System.Text.Json;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace Nspawn.Build.Tasks;

/// <summary>
/// The resolved settings as MSBuild items, and back: the first task of a target makes them, every later task
/// reads them. Values are stored literally (escaped for MSBuild), times in seconds.
/// </summary>
internal static class ResolvedItems
{
    public static ITaskItem FromStore(StoreSettings s) => Item(s.ChrootsDir,
        ("ImageFile", s.ImageFile), ("ImageSize", s.ImageSize.ToString(CultureInfo.InvariantCulture)), ("Mode", s.Mode.ToString().ToLowerInvariant()),
        ("MaxAge", s.MaxAge is { } age ? Seconds(age) : ""), ("BuildTimeout", Seconds(s.BuildTimeout)),
        ("CacheDir", s.CacheDir ?? ""), ("KeepImages", string.Join(',', s.KeepImages)));

    public static StoreSettings ToStore(ITaskItem[] items)
    {
        var item = items.Length == 1 ? items[0] : throw new NspawnException(ErrorCodes.BadOption, $"Expected one resolved store, got {items.Length}: call the task from the package's targets.");
        return new StoreSettings(item.ItemSpec, item.GetMetadata("ImageFile"), long.Parse(item.GetMetadata("ImageSize"), CultureInfo.InvariantCulture),
            Enum.Parse<EphemeralMode>(item.GetMetadata("Mode"), ignoreCase: true))
        {
            MaxAge = item.GetMetadata("MaxAge") is { Length: > 0 } age ? FromSeconds(age) : null,
            BuildTimeout = FromSeconds(item.GetMetadata("BuildTimeout")),
            CacheDir = item.GetMetadata("CacheDir") is { Length: > 0 } cache ? cache : null,
            KeepImages = item.GetMetadata("KeepImages").Split(',', StringSplitOptions.RemoveEmptyEntries),
        };
    }

    public static ITaskItem FromImage(ImageSpec spec) => Item(spec.Name,
        ("Suite", spec.Suite), ("BaseImage", spec.Base?.Name ?? ""), ("Spec", JsonSerializer.Serialize(spec, StateJson.SerializerOptions)));

    public static ImageSpec ToImage(ITaskItem item) => JsonSerializer.Deserialize<ImageSpec>(item.GetMetadata("Spec"), StateJson.SerializerOptions)!;

    public static ITaskItem FromLaunch(LaunchOptions o) => Item(o.LogicalName,
        ("Image", o.Image), ("ImageDir", o.ImageDir), ("Mode", o.Mode.ToString().ToLowerInvariant()), ("Launcher", o.UseSystemdRun ? "systemd-run" : "direct"),
        ("BootTimeout", Seconds(o.BootTimeout)), ("StopTimeout", Seconds(o.StopTimeout)), ("NspawnArguments", string.Join(';', o.ExtraArguments)),
        ("Network", o.Network.ToString().ToLowerInvariant()), ("Binds", JsonSerializer.Serialize(o.Binds, StateJson.SerializerOptions)),
        ("ResultsDir", o.ResultsDir ?? ""), ("KeepLogs", o.KeepLogs.ToString().ToLowerInvariant()), ("KeepOnFailure", o.KeepOnFailure ? "true" : "false"),
        ("PrivateUsers", o.PrivateUsers ? "true" : "false"));

    /// <summary>Options for one start: each start gets a new unique machine name.</summary>
    public static LaunchOptions ToLaunch(ITaskItem item) => new(item.ItemSpec, item.GetMetadata("ImageDir"))
    {
        Mode = Enum.Parse<EphemeralMode>(item.GetMetadata("Mode"), ignoreCase: true),
        UseSystemdRun = item.GetMetadata("Launcher") == "systemd-run",
        BootTimeout = FromSeconds(item.GetMetadata("BootTimeout")),
        StopTimeout = FromSeconds(item.GetMetadata("StopTimeout")),
        ExtraArguments = item.GetMetadata("NspawnArguments").Split(';', StringSplitOptions.RemoveEmptyEntries),
        Network = Enum.Parse<NetworkMode>(item.GetMetadata("Network"), ignoreCase: true),
        Binds = JsonSerializer.Deserialize<List<BindMount>>(item.GetMetadata("Binds"), StateJson.SerializerOptions) ?? [],
        ResultsDir = item.GetMetadata("ResultsDir") is { Length: > 0 } results ? results : null,
        KeepLogs = Enum.Parse<KeepLogs>(item.GetMetadata("KeepLogs"), ignoreCase: true),
        KeepOnFailure = Settings.KeepOnFailure.Read(item.GetMetadata("KeepOnFailure")),
        PrivateUsers = Settings.PrivateUsers.Read(item.GetMetadata("PrivateUsers")),
    };

    public static ITaskItem FromNetwork(NetworkSettings n) => Item(n.Mode.ToString().ToLowerInvariant(),
        ("Range", n.Range.ToString()), ("Outbound", n.Outbound ? "true" : "false"));

    public static NetworkSettings ToNetwork(ITaskItem[] items)
    {
        var item = items.Length == 1 ? items[0] : throw new NspawnException(ErrorCodes.BadOption, $"Expected one resolved network, got {items.Length}: call the task from the package's targets.");
        return new NetworkSettings(Enum.Parse<NetworkMode>(item.ItemSpec, ignoreCase: true), Ipv4Range.TryParse(item.GetMetadata("Range"))!.Value, item.GetMetadata("Outbound") == "true");
    }

    /// <summary>A private network that StartEphemeral made, for StopEphemeral to remove.</summary>
    public static ITaskItem FromPrivateNetwork(PrivateNetwork n) => Item(n.Bridge, ("Subnet", n.Subnet), ("Outbound", n.Outbound ? "true" : "false"));

    public static PrivateNetwork ToPrivateNetwork(ITaskItem item) => new(item.ItemSpec, item.GetMetadata("Subnet"), item.GetMetadata("Outbound") == "true");

    public static ITaskItem FromMachine(Machine m) => Item(m.LogicalName,
        ("MachineName", m.Name), ("Image", m.Image), ("ImageDir", m.ImageDir), ("LeaderPid", m.LeaderPid.ToString(CultureInfo.InvariantCulture)),
        ("NspawnPid", m.NspawnPid.ToString(CultureInfo.InvariantCulture)), ("Machine", MachinesFile.SerializeOne(m)));

    public static Machine ToMachine(ITaskItem item) => MachinesFile.DeserializeOne(item.GetMetadata("Machine"));

    /// <summary>An environment variable as MSBuild items carry them for MTP: the name, and its value as metadata.</summary>
    public static ITaskItem Variable(string name, string value) => Item(name, ("Value", value));

    public static ProjectItem ToProjectItem(ITaskItem item) => new(item.ItemSpec,
        item.MetadataNames.Cast<string>().ToDictionary(name => name, item.GetMetadata));

    private static ITaskItem Item(string identity, params (string Name, string Value)[] metadata)
    {
        var item = new TaskItem(identity);
        foreach (var (name, value) in metadata)
            ((ITaskItem2)item).SetMetadataValueLiteral(name, value);
        return item;
    }

    private static string Seconds(TimeSpan span) => span.TotalSeconds.ToString(CultureInfo.InvariantCulture);

    private static TimeSpan FromSeconds(string text) => TimeSpan.FromSeconds(double.Parse(text, CultureInfo.InvariantCulture));
}
