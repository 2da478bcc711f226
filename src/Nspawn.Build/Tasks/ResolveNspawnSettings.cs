using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// The first step of every target: checks what the project wrote (the Nspawn* properties, without their
/// prefix here, and the NspawnMachine, NspawnImageDefinition, NspawnImageFiles and NspawnBind items) once, before
/// anything is created, and hands the other tasks resolved items: one store, one item per image, one per machine.
/// </summary>
public sealed class ResolveNspawnSettings : NspawnTask
{
    /// <summary>The project's folder, for relative paths.</summary>
    public string BaseDir { get; set; } = "";
    public string ChrootsDir { get; set; } = "";
    public string BtrfsImageFile { get; set; } = "";
    public string BtrfsImageSize { get; set; } = "";
    public string EphemeralMode { get; set; } = "";
    public string Image { get; set; } = "";
    public string Suite { get; set; } = "";
    public string Mirror { get; set; } = "";
    public string Variant { get; set; } = "";
    public string Include { get; set; } = "";
    public string Exclude { get; set; } = "";
    public string Arch { get; set; } = "";
    public string Components { get; set; } = "";
    public string SetupScript { get; set; } = "";
    public string SlimBoot { get; set; } = "";
    public string ImageMaxAge { get; set; } = "";
    public string ImageCacheDir { get; set; } = "";
    public string ImageBuildTimeout { get; set; } = "";
    public string KeepImages { get; set; } = "";
    public string BootTimeout { get; set; } = "";
    public string StopTimeout { get; set; } = "";
    public string Launcher { get; set; } = "";
    public string Network { get; set; } = "";
    public string NetworkRange { get; set; } = "";
    public string NetworkOutbound { get; set; } = "";
    public string KeepLogs { get; set; } = "";
    public string KeepOnFailure { get; set; } = "";
    public string PrivateUsers { get; set; } = "";
    public string PoolSize { get; set; } = "";
    /// <summary>VSTestResultsDirectory: the tests' results folder, where the machines' logs go too.</summary>
    public string ResultsDir { get; set; } = "";
    /// <summary>VSTestSetting: the suite's own run settings, kept in the generated file.</summary>
    public string RunSettings { get; set; } = "";
    public ITaskItem[] Machines { get; set; } = [];
    public ITaskItem[] ImageDefinitions { get; set; } = [];
    public ITaskItem[] ImageFiles { get; set; } = [];
    public ITaskItem[] Binds { get; set; } = [];
    /// <summary>Under sudo: folders (the project's, its references') whose files this build writes go back to the invoking user at its end.</summary>
    public string[] ReturnOwnership { get; set; } = [];
    /// <summary>The same for files directly in these folders (the current folder, where a binlog goes).</summary>
    public string[] ReturnOwnershipShallow { get; set; } = [];
    /// <summary>Also check the host (root, tools, the folders): false for targets that only clean up.</summary>
    public bool CheckHost { get; set; } = true;

    [Output] public ITaskItem[] Store { get; private set; } = [];
    [Output] public ITaskItem[] Images { get; private set; } = [];
    [Output] public ITaskItem[] ResolvedMachines { get; private set; } = [];
    /// <summary>One item: the network mode, with the range and whether there is a way out.</summary>
    [Output] public ITaskItem[] ResolvedNetwork { get; private set; } = [];
    /// <summary>NspawnPoolSize, checked: StartEphemeral keeps that many machines booted ahead.</summary>
    [Output] public int ResolvedPoolSize { get; private set; }

    private protected override Task ExecuteAsync(CancellationToken cancellationToken)
    {
        // First, so that even a build that fails here or later gives the user's files back.
        RunGuard.Of(BuildEngine4).ReturnOwnership(ReturnOwnership, ReturnOwnershipShallow, string.IsNullOrWhiteSpace(ChrootsDir) ? null : ChrootsDir);
        var project = SettingsResolver.Resolve(new ProjectSettings
        {
            BaseDir = BaseDir, ChrootsDir = ChrootsDir, BtrfsImageFile = BtrfsImageFile, BtrfsImageSize = BtrfsImageSize, EphemeralMode = EphemeralMode,
            Image = Image, Suite = Suite, Mirror = Mirror, Variant = Variant, Include = Include, Exclude = Exclude, Arch = Arch, Components = Components,
            SetupScript = SetupScript, SlimBoot = SlimBoot, ImageMaxAge = ImageMaxAge, ImageCacheDir = ImageCacheDir, ImageBuildTimeout = ImageBuildTimeout,
            KeepImages = KeepImages, BootTimeout = BootTimeout, StopTimeout = StopTimeout, Launcher = Launcher, RunSettings = RunSettings,
            Network = Network, NetworkRange = NetworkRange, NetworkOutbound = NetworkOutbound,
            KeepLogs = KeepLogs, KeepOnFailure = KeepOnFailure, PrivateUsers = PrivateUsers, ResultsDir = ResultsDir, PoolSize = PoolSize,
            Machines = Machines.Select(ResolvedItems.ToProjectItem).ToList(),
            ImageDefinitions = ImageDefinitions.Select(ResolvedItems.ToProjectItem).ToList(),
            ImageFiles = ImageFiles.Select(ResolvedItems.ToProjectItem).ToList(),
            Binds = Binds.Select(ResolvedItems.ToProjectItem).ToList(),
        });
        // The writable binds too: what the guests' root writes there is given back however the build ends.
        if (project.Machines.SelectMany(m => m.Binds).Where(b => !b.ReadOnly).Select(b => b.Source).Distinct().ToList() is { Count: > 0 } writable)
            RunGuard.Of(BuildEngine4).ReturnOwnership(writable, [], string.IsNullOrWhiteSpace(ChrootsDir) ? null : ChrootsDir);
        if (CheckHost)
            HostChecks.Run(project);
        Store = [ResolvedItems.FromStore(project.Store)];
        Images = project.Images.Select(ResolvedItems.FromImage).ToArray();
        ResolvedMachines = project.Machines.Select(ResolvedItems.FromLaunch).ToArray();
        ResolvedNetwork = [ResolvedItems.FromNetwork(project.Network)];
        ResolvedPoolSize = project.PoolSize;
        return Task.CompletedTask;
    }
}
