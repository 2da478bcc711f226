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
    /// <summary>The suite's own run settings (VSTestSetting), kept in the generated file.</summary>
    public string BaseRunSettings { get; set; } = "";
    /// <summary>The project (MSBuildProjectFullPath), for the command that stops kept machines.</summary>
    public string ProjectFile { get; set; } = "";
    /// <summary>NspawnOnVSTest: a machine that the targets did not stop by the end of the build is one whose tests failed.</summary>
    public bool LeftMeansFailed { get; set; }

    [Output] public ITaskItem[] StartedMachines { get; private set; } = [];
    /// <summary>The run settings for the test host: the suite's own with our variables (see RunFiles for where).</summary>
    [Output] public string RunSettingsFile { get; private set; } = "";
    /// <summary>The folder of the machines file and the run settings, for StopEphemeral to remove.</summary>
    [Output] public string RunDir { get; private set; } = "";

    private protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var options = Machines.Select(ResolvedItems.ToLaunch).ToList();
        var suiteSettings = RunSettings.Load(BaseRunSettings);
        var started = DateTime.UtcNow;
        RunDir = RunFiles.Create();
        var starts = options.Select(o => MachineLauncher.StartAsync(o, cancellationToken)).ToList();
        try
        {
            await Task.WhenAll(starts);
        }
        catch
        {
            // Leave nothing running: stop the machines that did come up, then report the first failure.
            foreach (var stopped in await Task.WhenAll(starts.Where(t => t.IsCompletedSuccessfully).Select(t => MachineLauncher.StopAsync(t.Result, CancellationToken.None))))
                Progress($"Stopped {stopped}, since another machine did not start.");
            RunFiles.Remove(RunDir);
            throw starts.Select(t => t.Exception?.InnerException).OfType<NspawnException>().FirstOrDefault()
                ?? starts.First(t => t.IsFaulted || t.IsCanceled).Exception?.InnerException ?? new OperationCanceledException();
        }

        var machines = starts.Select(t => t.Result).ToList();
        foreach (var m in machines)
            MachineGuard.Register(BuildEngine4, m, RunDir, LeftMeansFailed, ProjectFile);
        Progress($"Started {string.Join(", ", machines.Select(m => $"'{m.LogicalName}' ({m.Name}, {(m.Unit is null ? "" : $"unit {m.Unit}, ")}image {m.Image}, leader PID {m.LeaderPid})"))} in {(DateTime.UtcNow - started).TotalSeconds:0.0} s.");

        StartedMachines = machines.Select(ResolvedItems.FromMachine).ToArray();
        var machinesFile = RunFiles.Write(RunDir, "machines.json", s => s.Write(System.Text.Encoding.UTF8.GetBytes(MachinesFile.Serialize(machines))));
        RunSettingsFile = RunFiles.Write(RunDir, "nspawn.runsettings", s => RunSettings.Merge(suiteSettings, MachinesFile.Environment(machines, machinesFile)).Save(s));
    }
}
