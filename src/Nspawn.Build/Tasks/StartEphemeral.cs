using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// Boots one ephemeral machine per resolved machine, all at once, and returns when every one has reached
/// READY=1. Writes the machines file and the run settings that hand them to the test host.
/// </summary>
public sealed class StartEphemeral : NspawnTask
{
    /// <summary>ResolveNspawnSettings' ResolvedMachines.</summary>
    [Required] public ITaskItem[] Machines { get; set; } = [];
    /// <summary>ResolveNspawnSettings' ResolvedNetwork; the host's network when not given.</summary>
    public ITaskItem[] Network { get; set; } = [];
    /// <summary>The suite's own run settings (VSTestSetting), kept in the generated file.</summary>
    public string BaseRunSettings { get; set; } = "";
    /// <summary>The project (MSBuildProjectFullPath), for the command that stops kept machines.</summary>
    public string ProjectFile { get; set; } = "";
    /// <summary>NspawnOnVSTest: a machine that the targets did not stop by the end of the build is one whose tests failed.</summary>
    public bool LeftMeansFailed { get; set; }
    /// <summary>NspawnPoolSize, resolved: that many machines like the first one are kept booted ahead for the tests' own (EphemeralMachine.StartAsync).</summary>
    public int PoolSize { get; set; }
    /// <summary>Only begin the boot and return (ContainerTest, before Build): a later StartEphemeral with <see cref="Pending"/> waits for it.</summary>
    public bool Begin { get; set; }
    /// <summary>The <see cref="PendingStart"/> of a StartEphemeral with <see cref="Begin"/>: wait for that boot instead of booting.</summary>
    public string Pending { get; set; } = "";

    /// <summary>NspawnUp: leave the machines running for the user's test runs without root, recorded as the project's, found through <see cref="UpFile"/>.</summary>
    public bool Up { get; set; }
    /// <summary>With <see cref="Up"/>: the file in the project (obj/) that its tests read to find the machines.</summary>
    public string UpFile { get; set; } = "";

    /// <summary>The tests' output folder (TargetDir), bound read-only into each machine at the same path for InvokeAsync.</summary>
    public string CodeDir { get; set; } = "";

    [Output] public ITaskItem[] StartedMachines { get; private set; } = [];
    /// <summary>The run settings for the test host: the suite's own with our variables (see RunFiles for where).</summary>
    [Output] public string RunSettingsFile { get; private set; } = "";
    /// <summary>The folder of the machines file and the run settings, for StopEphemeral to remove.</summary>
    [Output] public string RunDir { get; private set; } = "";
    /// <summary>The private network made for the machines, for StopEphemeral to remove; none on the host's network.</summary>
    [Output] public ITaskItem[] StartedNetwork { get; private set; } = [];
    /// <summary>The same variables as items (metadata Value), for an MTP test application (TestingPlatformEnvironmentVariable).</summary>
    [Output] public ITaskItem[] Environment { get; private set; } = [];
    /// <summary>With <see cref="Begin"/>: the boot under way, for <see cref="Pending"/>.</summary>
    [Output] public string PendingStart { get; private set; } = "";

    private protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var codeDir = CodeDir.Length > 0 ? Path.GetFullPath(CodeDir) : null;
        var options = Machines.Select(ResolvedItems.ToLaunch).Select(o => o with { CodeDir = codeDir }).ToList();
        var network = Network.Length > 0 ? ResolvedItems.ToNetwork(Network) : null;
        var suiteSettings = RunSettings.Load(BaseRunSettings);
        MakeCodeDir(codeDir);
        if (Up)
        {
            await UpAsync(options, network, cancellationToken);
            return;
        }
        if (Begin)
        {
            // The machines boot while the project compiles, when what they bind is there already: the output folder
            // (for InvokeAsync, made above) and the NspawnBind folders. Else they boot after Build.
            if ((codeDir is null || Directory.Exists(codeDir)) && options.SelectMany(o => o.Binds).All(b => Path.Exists(b.Source)))
            {
                // Left to the end of the build until NspawnStopMachines ends it: a build that fails first takes it down.
                var begun = Run.Begin(options, network, ProjectFile);
                RunGuard.Of(BuildEngine4).Hold(begun);
                PendingStart = begun.RunDir;
            }
            return;
        }
        // Build may have made them only now ($(OutDir)): checked before anything starts.
        foreach (var o in options)
            foreach (var bind in o.Binds)
                bind.Check($"An NspawnBind of machine '{o.LogicalName}'");
        var guard = RunGuard.Of(BuildEngine4);
        var run = (Pending == "" ? null : guard.Find(Pending)) ?? Run.Begin(options, network, ProjectFile);
        // A backstop: what the targets do not end (a failed VSTest skips them) is ended when the build ends, however it ends.
        guard.Hold(run, LeftMeansFailed);
        RunDir = run.RunDir;
        var environment = await run.ReadyAsync(PoolSize, Progress, cancellationToken);
        if (run.Network is { } privateNetwork)
            StartedNetwork = [ResolvedItems.FromPrivateNetwork(privateNetwork)];
        StartedMachines = run.Machines.Select(ResolvedItems.FromMachine).ToArray();
        RunSettingsFile = RunFiles.Write(RunDir, "nspawn.runsettings", s => RunSettings.Merge(suiteSettings, environment).Save(s));
        Environment = environment.Select(v => ResolvedItems.Variable(v.Key, v.Value)).ToArray();
    }

    /// <summary>
    /// NspawnUp: the project's up machines are replaced by fresh ones, left running when the build ends (no run, no pool),
    /// and handed to the sudo user's test runs. What fails before they are handed over is stopped here.
    /// </summary>
    private async Task UpAsync(IReadOnlyList<LaunchOptions> options, NetworkSettings? network, CancellationToken cancellationToken)
    {
        var project = Path.GetFullPath(ProjectFile);
        var upFile = Path.GetFullPath(UpFile);
        var user = Ownership.SudoUser;
        var earlier = UpMachines.Of(project);
        if (earlier.Count > 0)
            foreach (var stopped in await UpMachines.DownAsync(earlier, user, Progress, cancellationToken))
                Progress($"Stopped the earlier up machine {stopped}.");
        var run = Run.Begin(options, network, project);
        var machines = await run.WaitAsync(Progress, cancellationToken);
        try
        {
            UpMachines.Keep(machines, network?.Mode ?? Settings.Network.Default, run.Network, project, upFile, user);
        }
        catch
        {
            // A machine that would not stop is said too, beside the reason they could not be kept.
            LogFailures((await run.EndAsync(testsFailed: false, Progress, w => LogWarning(w))).Failures);
            throw;
        }
        run.HandOver();
        Progress(MachineLauncher.Describe(machines, DateTime.UtcNow - run.Began));
        Progress(UpMachines.Describe(machines, project));
        if (user is null)
            Progress("No sudo user ran this build (SUDO_UID is not set): only root can reach the up machines.");
    }

    /// <summary>
    /// The output folder goes into the machines (InvokeAsync) when they boot, which may be before the build makes it
    /// (a clean tree, the boot during compilation, NspawnOnTest): made now, in the project's folder only, without
    /// following a link, and the sudo user's at once.
    /// </summary>
    private void MakeCodeDir(string? codeDir)
    {
        if (codeDir is null || ProjectFile == "" || Directory.Exists(codeDir))
            return;
        var project = Path.GetDirectoryName(Path.GetFullPath(ProjectFile))!;
        if (!MountTable.IsUnder(codeDir, project) || codeDir == project)
            return;
        try
        {
            using (UserFolder.Make(project, codeDir, Ownership.SudoUser))
            {
            }
        }
        catch (Exception e) when (e is NspawnException or IOException or UnauthorizedAccessException)
        {
            // A link on the way (bin on another disk, say) is not ours to follow: the machines boot after Build instead.
            Log.LogMessage(MessageImportance.Normal, $"The output folder was not made ahead of the build: {e.Message}");
        }
    }
}
