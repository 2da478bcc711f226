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

    private protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var options = Machines.Select(ResolvedItems.ToLaunch).Select(o => o with { CodeDir = CodeDir.Length > 0 ? Path.GetFullPath(CodeDir) : null }).ToList();
        var network = Network.Length > 0 ? ResolvedItems.ToNetwork(Network) : null;
        var suiteSettings = RunSettings.Load(BaseRunSettings);
        // Build may have made them only now ($(OutDir)): checked before anything starts.
        foreach (var o in options)
            foreach (var bind in o.Binds)
                bind.Check($"An NspawnBind of machine '{o.LogicalName}'");
        var started = DateTime.UtcNow;
        PrivateNetwork? privateNetwork = null;
        if (network?.Mode == NetworkMode.Private)
        {
            privateNetwork = await NetworkRegistry.CreateAsync(network, cancellationToken);
            NetworkGuard.Register(BuildEngine4, privateNetwork);
            options = options.Select(o => o with { PrivateNetwork = privateNetwork }).ToList();
            StartedNetwork = [ResolvedItems.FromPrivateNetwork(privateNetwork)];
            Progress($"Made the private network {privateNetwork.Bridge} ({privateNetwork.Subnet}, the host at {privateNetwork.Gateway}{(privateNetwork.Outbound ? ", with a way out" : "")}).");
        }
        RunDir = RunFiles.Create();
        IReadOnlyList<Machine> machines;
        try
        {
            machines = await MachineLauncher.StartAllAsync(options, Progress, cancellationToken);
        }
        catch
        {
            RunFiles.Remove(RunDir);
            if (privateNetwork is not null)
            {
                await NetworkRegistry.RemoveAsync(privateNetwork, CancellationToken.None);
                NetworkGuard.Unregister(BuildEngine4, privateNetwork);
                StartedNetwork = [];
            }
            throw;
        }
        foreach (var m in machines)
            MachineGuard.Register(BuildEngine4, m, RunDir, LeftMeansFailed, ProjectFile);
        Progress(MachineLauncher.Describe(machines, DateTime.UtcNow - started));

        StartedMachines = machines.Select(ResolvedItems.FromMachine).ToArray();
        var machinesFile = RunFiles.Write(RunDir, "machines.json", s => s.Write(System.Text.Encoding.UTF8.GetBytes(MachinesFile.Serialize(machines, network?.Mode ?? NetworkMode.Host, privateNetwork))));
        var environment = MachinesFile.Environment(machines, machinesFile);
        RunSettingsFile = RunFiles.Write(RunDir, "nspawn.runsettings", s => RunSettings.Merge(suiteSettings, environment).Save(s));
        Environment = environment.Select(v => ResolvedItems.Variable(v.Key, v.Value)).ToArray();
    }
}
