namespace Nspawn.Build;

/// <summary>
/// Turns what the project wrote into checked values, once: the first step of every target. Every default
/// comes from <see cref="Settings"/>; every error names what the user wrote (a property, or an item's metadata).
/// </summary>
internal static class SettingsResolver
{
    public static ResolvedProject Resolve(ProjectSettings p)
    {
        var chroots = Settings.ChrootsDir.Read(p.ChrootsDir);
        var loopFile = Settings.BtrfsImageFile.Read(Or(p.BtrfsImageFile, Path.Combine(chroots, Defaults.LoopFileName)));
        var store = new StoreSettings(chroots, loopFile, Settings.BtrfsImageSize.Read(p.BtrfsImageSize), EphemeralModeResolver.Resolve(p.EphemeralMode, chroots, loopFile))
        {
            MaxAge = Settings.ImageMaxAge.Read(p.ImageMaxAge),
            BuildTimeout = Settings.ImageBuildTimeout.Read(p.ImageBuildTimeout),
            CacheDir = Settings.ImageCacheDir.Read(p.ImageCacheDir),
            KeepImages = Settings.KeepImages.Read(p.KeepImages),
        };
        var mainImage = Settings.Image.Read(p.Image);
        var network = Network(p);
        var machines = Machines(p, store, mainImage, network);
        var images = machines.Select(m => m.Image).Distinct().Select(name => Image(p, name, mainImage, [])).ToList();
        RunSettings.Load(p.RunSettings);
        var poolSize = Settings.PoolSize.Read(p.PoolSize);
        return new ResolvedProject(store, images, machines, network) { PoolSize = poolSize };
    }

    private static NetworkSettings Network(ProjectSettings p)
    {
        var network = new NetworkSettings(Settings.Network.Read(p.Network), Settings.NetworkRange.Read(p.NetworkRange), Settings.NetworkOutbound.Read(p.NetworkOutbound));
        if (network.Outbound && network.Mode != NetworkMode.Private)
            throw new NspawnException(ErrorCodes.BadOption,
                $"NspawnNetworkOutbound is true but NspawnNetwork is '{Settings.Network.Or(p.Network)}': a way out through the host is for NspawnNetwork=private only. Set NspawnNetwork to 'private', or leave NspawnNetworkOutbound out.");
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
            var readOnly = Validate.Flag(Or(item.Get("ReadOnly"), Defaults.BindReadOnly), $"The ReadOnly of {label}");
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
        var boot = Settings.BootTimeout.Read(p.BootTimeout);
        var stop = Settings.StopTimeout.Read(p.StopTimeout);
        var useSystemdRun = Settings.Launcher.Read(p.Launcher);
        var keepLogs = Settings.KeepLogs.Read(p.KeepLogs);
        var keepOnFailure = Settings.KeepOnFailure.Read(p.KeepOnFailure);
        var privateUsers = Settings.PrivateUsers.Read(p.PrivateUsers);
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
        // The definition's metadata, else what the project wrote to the property, else its default; and, for an error, the name of what it came from.
        (string Text, string Label) Written(string metadata, Setting setting, string written) =>
            definition?.Get(metadata) is { Length: > 0 } value ? (value, $"NspawnImageDefinition '{name}': {metadata}") : (setting.Or(written), setting.Name);
        T Pick<T>(string metadata, Setting<T> setting, string written)
        {
            var (text, label) = Written(metadata, setting, written);
            return setting.Parse(text, label);
        }

        var script = Written("SetupScript", Settings.SetupScript, main ? p.SetupScript : "");
        var baseImage = definition?.Get("BaseImage") ?? "";
        return new ImageSpec(name,
            Pick("Suite", Settings.Suite, main ? Or(p.Suite, name) : name),
            Pick("Mirror", Settings.Mirror, p.Mirror),
            Pick("Variant", Settings.Variant, p.Variant),
            Pick("Packages", Settings.Include, p.Include))
        {
            Exclude = Pick("ExcludePackages", Settings.Exclude, p.Exclude),
            Arch = Pick("Arch", Settings.Arch, p.Arch),
            Components = Pick("Components", Settings.Components, p.Components),
            Slim = Pick("Slim", Settings.SlimBoot, p.SlimBoot),
            SetupScript = string.IsNullOrWhiteSpace(script.Text) ? null : Validate.InputFile(script.Text, p.BaseDir, script.Label),
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
}
