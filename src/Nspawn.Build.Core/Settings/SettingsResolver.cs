namespace Nspawn.Build;

/// <summary>
/// Turns what the project wrote into checked values, once: the first step of every target. Every default
/// comes from <see cref="Defaults"/>; every error names what the user wrote (a property, or an item's metadata).
/// </summary>
internal static class SettingsResolver
{
    public static ResolvedProject Resolve(ProjectSettings p)
    {
        var chroots = Validate.AbsolutePath(p.ChrootsDir, "NspawnChrootsDir");
        var loopFile = Validate.AbsolutePath(Or(p.BtrfsImageFile, Path.Combine(chroots, Defaults.LoopFileName)), "NspawnBtrfsImageFile");
        var store = new StoreSettings(chroots, loopFile, Validate.Size(Or(p.BtrfsImageSize, Defaults.LoopFileSize), "NspawnBtrfsImageSize"),
            EphemeralModeResolver.Resolve(Or(p.EphemeralMode, Defaults.EphemeralMode), chroots, loopFile))
        {
            MaxAge = Validate.MaxAge(p.ImageMaxAge, "NspawnImageMaxAge"),
            BuildTimeout = Validate.Timeout(Or(p.ImageBuildTimeout, Seconds(Defaults.ImageBuildTimeout)), "NspawnImageBuildTimeout"),
            CacheDir = string.IsNullOrWhiteSpace(p.ImageCacheDir) ? null : Validate.AbsolutePath(p.ImageCacheDir, "NspawnImageCacheDir"),
            KeepImages = Validate.Words(p.KeepImages, "NspawnKeepImages"),
        };
        var mainImage = Validate.ImageName(Or(p.Image, Defaults.Image), "NspawnImage");
        var network = Network(p);
        var machines = Machines(p, store, mainImage, network);
        var images = machines.Select(m => m.Image).Distinct().Select(name => Image(p, name, mainImage, [])).ToList();
        RunSettings.Load(p.RunSettings);
        var poolSize = Validate.PoolSize(Or(p.PoolSize, Defaults.PoolSize.ToString(System.Globalization.CultureInfo.InvariantCulture)), "NspawnPoolSize");
        return new ResolvedProject(store, images, machines, network) { PoolSize = poolSize };
    }

    private static NetworkSettings Network(ProjectSettings p)
    {
        var network = new NetworkSettings(
            Validate.Choice(Or(p.Network, Defaults.Network), "NspawnNetwork", ("host", NetworkMode.Host), ("private", NetworkMode.Private), ("none", NetworkMode.None)),
            Validate.NetworkRange(Or(p.NetworkRange, Defaults.NetworkRange), "NspawnNetworkRange"),
            Validate.Choice(Or(p.NetworkOutbound, Defaults.NetworkOutbound), "NspawnNetworkOutbound", ("true", true), ("false", false)));
        if (network.Outbound && network.Mode != NetworkMode.Private)
            throw new NspawnException(ErrorCodes.BadOption,
                $"NspawnNetworkOutbound is true but NspawnNetwork is '{Or(p.Network, Defaults.Network)}': a way out through the host is for NspawnNetwork=private only. Set NspawnNetwork to 'private', or leave NspawnNetworkOutbound out.");
        return network;
    }

    /// <summary>
    /// Each NspawnBind item, checked: the Include is a host path (relative to the project, as for every item);
    /// Destination defaults to the same path, ReadOnly to true, Machines to all. Whether the source exists is
    /// checked when the machines start, since Build may make it ($(OutDir)).
    /// </summary>
    private static List<(BindMount Bind, IReadOnlyList<string> Machines)> Binds(ProjectSettings p, IReadOnlyList<string> machineNames)
    {
        var binds = new List<(BindMount, IReadOnlyList<string>)>();
        foreach (var item in p.Binds)
        {
            var label = $"NspawnBind '{item.Name}'";
            if (string.IsNullOrWhiteSpace(item.Name) || item.Name.Contains('\0'))
                throw new NspawnException(ErrorCodes.BadPath, $"{label} is not a path. Give a host folder or file, such as '$(OutDir)'.");
            var source = Path.GetFullPath(Or(item.Get("FullPath"), item.Name), string.IsNullOrEmpty(p.BaseDir) ? Directory.GetCurrentDirectory() : p.BaseDir);
            source = source.Length > 1 ? source.TrimEnd('/') : source;
            var destination = item.Get("Destination") is { Length: > 0 } d ? d.TrimEnd('/') is { Length: > 0 } t ? t : "/" : source;
            if (!destination.StartsWith('/') || destination.Split('/').Contains("..") || destination.Contains('\0'))
                throw new NspawnException(ErrorCodes.BadPath,
                    $"The Destination of {label} '{item.Get("Destination")}' is not an absolute path in the machine. Give one such as '/opt/app', or leave it out for the same path as on the host.");
            var readOnly = Validate.Choice(Or(item.Get("ReadOnly"), Defaults.BindReadOnly), $"The ReadOnly of {label}", ("true", true), ("false", false));
            var machines = item.Get("Machines").Split([';', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var name in machines.Where(m => !machineNames.Contains(m)))
                throw new NspawnException(ErrorCodes.BadMachineName,
                    $"The Machines of {label} name '{name}', which is not a declared machine (there are: {string.Join(", ", machineNames)}). Declare it as an NspawnMachine item, or fix the name.");
            binds.Add((new BindMount(source, destination, readOnly), machines.Length == 0 ? machineNames : machines));
        }
        return binds;
    }

    private static List<LaunchOptions> Machines(ProjectSettings p, StoreSettings store, string mainImage, NetworkSettings network)
    {
        var boot = Validate.Timeout(Or(p.BootTimeout, Seconds(Defaults.BootTimeout)), "NspawnBootTimeout");
        var stop = Validate.Timeout(Or(p.StopTimeout, Seconds(Defaults.StopTimeout)), "NspawnStopTimeout");
        var useSystemdRun = Validate.Choice(Or(p.Launcher, Defaults.Launcher), "NspawnLauncher",
            ("auto", LaunchOptions.HostHasSystemd), ("systemd-run", true), ("direct", false));
        var keepLogs = Validate.Choice(Or(p.KeepLogs, Defaults.KeepLogs), "NspawnKeepLogs",
            ("failure", KeepLogs.Failure), ("always", KeepLogs.Always), ("never", KeepLogs.Never));
        var keepOnFailure = Validate.Choice(Or(p.KeepOnFailure, Defaults.KeepOnFailure), "NspawnKeepOnFailure", ("true", true), ("false", false));
        var privateUsers = Validate.Choice(Or(p.PrivateUsers, Defaults.PrivateUsers), "NspawnPrivateUsers", ("true", true), ("false", false));
        var results = ResultsDir(p);
        // One machine named 'default' unless the project declares its own.
        var items = p.Machines.Count > 0 ? p.Machines : [new ProjectItem(Defaults.MachineName, new Dictionary<string, string>())];
        var names = items.Select(item => Validate.MachineName(item.Name, "NspawnMachine")).ToList();
        var binds = Binds(p, names);
        var machines = items.Select(item =>
        {
            var logical = Validate.MachineName(item.Name, "NspawnMachine");
            var image = Validate.ImageName(Or(item.Get("Image"), mainImage), $"The Image of NspawnMachine '{logical}'");
            var options = new LaunchOptions(logical, Path.Combine(store.ChrootsDir, image))
            {
                BootTimeout = boot,
                StopTimeout = stop,
                UseSystemdRun = useSystemdRun,
                Mode = store.Mode,
                Network = network.Mode,
                Binds = binds.Where(b => b.Machines.Contains(logical)).Select(b => b.Bind).ToList(),
                ResultsDir = results,
                KeepLogs = keepLogs,
                KeepOnFailure = keepOnFailure,
                PrivateUsers = privateUsers,
                ExtraArguments = item.Get("NspawnArguments").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            };
            options.NspawnArguments();
            return options;
        }).ToList();
        if (machines.GroupBy(o => o.LogicalName).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new NspawnException(ErrorCodes.BadMachineName, $"NspawnMachine '{twice.Key}' is declared more than once. Give each machine its own name.");
        return machines;
    }

    /// <summary>
    /// The plain properties describe the main image; an NspawnImageDefinition item describes another, each
    /// metadata falling back to the property; any other image is the Debian suite of its name.
    /// </summary>
    private static ImageSpec Image(ProjectSettings p, string name, string mainImage, IReadOnlyList<string> derivedFrom)
    {
        if (derivedFrom.Contains(name))
            throw new NspawnException(ErrorCodes.BadOption, $"NspawnImageDefinition '{name}' is its own base ({string.Join(" -> ", derivedFrom.Append(name))}). Break the loop of BaseImage.");
        var definition = p.ImageDefinitions.FirstOrDefault(d => d.Name == name);
        var main = name == mainImage;
        // The value and, for an error, the name of what the user wrote it in.
        (string Value, string Label) Pick(string metadata, string property, string fallback) =>
            definition?.Get(metadata) is { Length: > 0 } value ? (value, $"NspawnImageDefinition '{name}': {metadata}") : (fallback, property);

        var suite = Pick("Suite", "NspawnSuite", main ? Or(p.Suite, name) : name);
        var mirror = Pick("Mirror", "NspawnMirror", Or(p.Mirror, Defaults.Mirror));
        var variant = Pick("Variant", "NspawnVariant", Or(p.Variant, Defaults.Variant));
        var include = Pick("Packages", "NspawnInclude", Or(p.Include, Defaults.Include));
        var exclude = Pick("ExcludePackages", "NspawnExclude", p.Exclude);
        var arch = Pick("Arch", "NspawnArch", p.Arch);
        var components = Pick("Components", "NspawnComponents", p.Components);
        var slim = Pick("Slim", "NspawnSlimBoot", Or(p.SlimBoot, "false"));
        var script = Pick("SetupScript", "NspawnSetupScript", main ? p.SetupScript : "");
        var baseImage = definition?.Get("BaseImage") ?? "";
        return new ImageSpec(name,
            Validate.ImageName(suite.Value, suite.Label),
            Validate.Mirror(mirror.Value, mirror.Label),
            Validate.Variant(variant.Value, variant.Label),
            Validate.Packages(include.Value, include.Label))
        {
            Exclude = Validate.Packages(exclude.Value, exclude.Label),
            Arch = Validate.Word(arch.Value, arch.Label),
            Components = Validate.Words(components.Value, components.Label),
            Slim = Validate.Choice(slim.Value, slim.Label, ("true", true), ("false", false)),
            SetupScript = string.IsNullOrWhiteSpace(script.Value) ? null : Validate.InputFile(script.Value, p.BaseDir, script.Label),
            Files = !main ? [] : p.ImageFiles.Select(f => new ImageFile(
                Validate.InputFile(Or(f.Get("FullPath"), f.Name), p.BaseDir, $"NspawnImageFiles '{f.Name}'"),
                Validate.ImagePath(f.Get("Destination"), $"The Destination of NspawnImageFiles '{f.Name}'"))).ToList(),
            Base = baseImage == "" ? null
                : Image(p, Validate.ImageName(baseImage, $"NspawnImageDefinition '{name}': BaseImage"), mainImage, [.. derivedFrom, name]),
        };
    }

    /// <summary>VSTestResultsDirectory (relative to the project's folder) when set, else the project's TestResults folder, where VSTest writes too.</summary>
    private static string ResultsDir(ProjectSettings p)
    {
        var baseDir = string.IsNullOrEmpty(p.BaseDir) ? Directory.GetCurrentDirectory() : p.BaseDir;
        if (p.ResultsDir.Contains('\0'))
            throw new NspawnException(ErrorCodes.BadPath, $"VSTestResultsDirectory '{p.ResultsDir}' is not a path. Fix it or leave it out.");
        return Path.GetFullPath(Or(p.ResultsDir, Defaults.ResultsFolder), baseDir).TrimEnd('/');
    }

    private static string Or(string? value, string fallback) => string.IsNullOrWhiteSpace(value) ? fallback : value;

    private static string Seconds(TimeSpan span) => span.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
