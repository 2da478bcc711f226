using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// Boots one ephemeral machine per <c>NspawnMachine</c> item, all at once, and returns when every one has
/// reached READY=1. Writes the machines file and the run settings that hand them to the test host.
/// </summary>
public sealed class StartEphemeral : NspawnTask
{
    [Required] public string ChrootsDir { get; set; } = "";
    /// <summary>Identity: the logical name; metadata Image: the image to boot.</summary>
    [Required] public ITaskItem[] Machines { get; set; } = [];
    [Required] public string BootTimeout { get; set; } = "";
    /// <summary>auto (systemd-run when PID 1 is systemd), systemd-run, or direct.</summary>
    public string Launcher { get; set; } = "auto";
    /// <summary>snapshot, overlay or auto (see EphemeralModes.Resolve).</summary>
    public string EphemeralMode { get; set; } = "snapshot";
    /// <summary>The loop file, which tells auto that the chroots folder is btrfs even while unmounted.</summary>
    public string BtrfsImageFile { get; set; } = "";
    public string MachinesFile { get; set; } = "";
    public string RunSettingsFile { get; set; } = "";
    /// <summary>The suite's own run settings (VSTestSetting), kept in the generated file.</summary>
    public string BaseRunSettings { get; set; } = "";

    [Output] public ITaskItem[] StartedMachines { get; private set; } = [];

    private IReadOnlyList<LaunchOptions> Options()
    {
        var chroots = Validate.AbsolutePath(ChrootsDir, "NspawnChrootsDir");
        var timeout = Validate.Timeout(BootTimeout, "NspawnBootTimeout");
        var useSystemdRun = Validate.Choice(Launcher, "NspawnLauncher",
            ("auto", LaunchOptions.HostHasSystemd), ("systemd-run", true), ("direct", false));
        var mode = EphemeralModes.Resolve(EphemeralMode, chroots, BtrfsImageFile);
        if (Machines.Length == 0)
            throw new NspawnException(ErrorCodes.BadMachineName, "No NspawnMachine items: declare at least one, or leave them all out for one machine named 'default'.");
        var options = Machines.Select(item =>
        {
            var logical = Validate.MachineName(item.ItemSpec, "NspawnMachine");
            var image = Validate.ImageName(item.GetMetadata("Image"), $"The Image of NspawnMachine '{logical}'");
            var extra = item.GetMetadata("NspawnArguments").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            return new LaunchOptions(logical, image, Path.Combine(chroots, image), LaunchOptions.UniqueName(logical), timeout, useSystemdRun)
            {
                Mode = mode,
                ExtraArguments = extra,
            };
        }).ToList();
        if (options.GroupBy(o => o.LogicalName).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new NspawnException(ErrorCodes.BadMachineName, $"NspawnMachine '{twice.Key}' is declared more than once. Give each machine its own name.");
        foreach (var o in options)
            o.NspawnArguments();
        RunSettings.Load(BaseRunSettings);
        return options;
    }

    protected override void Check()
    {
        foreach (var o in Options())
            MachineLauncher.Check(o);
    }

    protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var options = Options();
        var suiteSettings = RunSettings.Load(BaseRunSettings);
        var started = DateTime.UtcNow;
        var starts = options.Select(o => MachineLauncher.StartAsync(o, cancellationToken)).ToList();
        try
        {
            await Task.WhenAll(starts);
        }
        catch
        {
            // Leave nothing running: stop the machines that did come up, then report the first failure.
            await Task.WhenAll(starts.Where(t => t.IsCompletedSuccessfully)
                .Select(t => MachineLauncher.StopAsync(t.Result, MachineLauncher.DefaultStopTimeout, CancellationToken.None)));
            throw starts.Select(t => t.Exception?.InnerException).OfType<NspawnException>().FirstOrDefault()
                ?? starts.First(t => t.IsFaulted || t.IsCanceled).Exception?.InnerException ?? new OperationCanceledException();
        }

        var machines = starts.Select(t => t.Result).ToList();
        foreach (var m in machines)
            MachineGuard.Register(BuildEngine4, m);
        Progress($"Started {string.Join(", ", machines.Select(m => $"'{m.LogicalName}' ({m.Name}, {(m.Unit is null ? "" : $"unit {m.Unit}, ")}image {m.Image}, leader PID {m.LeaderPid})"))} in {(DateTime.UtcNow - started).TotalSeconds:0.0} s.");

        if (!string.IsNullOrEmpty(MachinesFile))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(MachinesFile))!);
            File.WriteAllText(MachinesFile, Nspawn.Build.MachinesFile.Serialize(machines));
            if (!string.IsNullOrEmpty(RunSettingsFile))
                RunSettings.Merge(suiteSettings, Nspawn.Build.MachinesFile.Environment(machines, Path.GetFullPath(MachinesFile))).Save(RunSettingsFile);
        }
        StartedMachines = machines.Select(ToItem).ToArray();
    }

    private static Microsoft.Build.Utilities.TaskItem ToItem(Machine m)
    {
        var item = new Microsoft.Build.Utilities.TaskItem(m.LogicalName);
        item.SetMetadata("MachineName", m.Name);
        item.SetMetadata("Image", m.Image);
        item.SetMetadata("ImageDir", m.ImageDir);
        item.SetMetadata("LeaderPid", m.LeaderPid.ToString());
        item.SetMetadata("NspawnPid", m.NspawnPid.ToString());
        item.SetMetadata("Machine", Nspawn.Build.MachinesFile.SerializeOne(m));
        return item;
    }
}
