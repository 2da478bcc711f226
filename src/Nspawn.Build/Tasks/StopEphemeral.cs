using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>Stops the machines that StartEphemeral started: gracefully, then forcefully; fails if any nspawn or snapshot is left.</summary>
public sealed class StopEphemeral : NspawnTask
{
    /// <summary>StartEphemeral's StartedMachines.</summary>
    public ITaskItem[] Machines { get; set; } = [];
    public string StopTimeout { get; set; } = "15";
    /// <summary>Instead: stop the machines of builds that are gone, and remove leftovers in ChrootsDir.</summary>
    public bool Reap { get; set; }
    public string ChrootsDir { get; set; } = "";
    /// <summary>Under sudo: folders (the project's, its references', the current one) whose files this build wrote go back to the invoking user; ChrootsDir excepted.</summary>
    public string[] ReturnOwnership { get; set; } = [];
    /// <summary>The same for files directly in these folders (the current folder, where a binlog goes).</summary>
    public string[] ReturnOwnershipShallow { get; set; } = [];

    protected override void Check()
    {
        Validate.Timeout(StopTimeout, "NspawnStopTimeout");
        Tools.RequireRoot();
    }

    protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var timeout = Validate.Timeout(StopTimeout, "NspawnStopTimeout");
        if (Reap)
        {
            Tools.RequireRoot();
            var dirs = string.IsNullOrEmpty(ChrootsDir) ? [] : new[] { Validate.AbsolutePath(ChrootsDir, "NspawnChrootsDir") };
            foreach (var what in await MachineRegistry.ReapAsync(dirs, cancellationToken))
                Progress($"Removed a leftover of an earlier run: {what}.");
            return;
        }
        var machines = Machines.Select(i => MachinesFile.DeserializeOne(i.GetMetadata("Machine"))).ToList();
        // Stop them all even when one fails or the build is canceled: a stop is never cut short.
        var stops = machines.Select(async m =>
        {
            await MachineLauncher.StopAsync(m, timeout, CancellationToken.None);
            MachineGuard.Unregister(BuildEngine4, m);
        }).ToList();
        try
        {
            await Task.WhenAll(stops);
        }
        finally
        {
            foreach (var failure in stops.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException))
                if (failure is NspawnException e)
                    Log.LogError(null, e.Code, null, null, 0, 0, 0, 0, e.Message);
                else if (failure is not null)
                    Log.LogErrorFromException(failure);
        }
        if (machines.Count > 0)
            Log.LogMessage(MessageImportance.High, $"Stopped {string.Join(", ", machines.Select(m => $"'{m.LogicalName}' ({m.Name})"))}.");
        var keep = string.IsNullOrEmpty(ChrootsDir) ? null : ChrootsDir;
        await Ownership.ReturnToSudoUserAsync(ReturnOwnership, keep, recursive: true, cancellationToken);
        await Ownership.ReturnToSudoUserAsync(ReturnOwnershipShallow, keep, recursive: false, cancellationToken);
    }
}
