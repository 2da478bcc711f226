using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// Stops the machines that StartEphemeral started: gracefully, then forcefully after each one's stop timeout;
/// fails if any nspawn or snapshot is left. With Reap, stops the machines of builds that are gone instead.
/// </summary>
public sealed class StopEphemeral : NspawnTask
{
    /// <summary>StartEphemeral's StartedMachines.</summary>
    public ITaskItem[] Machines { get; set; } = [];
    /// <summary>Instead: stop the machines of builds that are gone, and remove leftovers in the store's folder.</summary>
    public bool Reap { get; set; }
    /// <summary>StartEphemeral's RunDir: the machines file and run settings, removed with the machines.</summary>
    public string RunDir { get; set; } = "";
    /// <summary>ResolveNspawnSettings' Store: where Reap looks.</summary>
    public ITaskItem[] Store { get; set; } = [];

    private protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var chrootsDir = Store.Length > 0 ? ResolvedItems.ToStore(Store).ChrootsDir : null;
        if (Reap || Machines.Length > 0)
            Privilege.RequireRoot();
        if (Reap)
        {
            foreach (var what in await MachineRegistry.ReapAsync(chrootsDir is null ? [] : [chrootsDir], cancellationToken))
                Progress($"Removed a leftover of an earlier run: {what}.");
            return;
        }
        var machines = Machines.Select(ResolvedItems.ToMachine).ToList();
        // Stop them all even when one fails or the build is canceled: a stop is never cut short. Each failure is logged once.
        var stops = machines.Select(async m =>
        {
            var outcome = await MachineLauncher.StopAsync(m, CancellationToken.None);
            MachineGuard.Unregister(BuildEngine4, m);
            return outcome;
        }).ToList();
        await Task.WhenAll(stops.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
        foreach (var failure in stops.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!))
            if (Expected(failure) is { } coded)
                LogError(coded);
            else
                Log.LogErrorFromException(failure, showStackTrace: true);
        if (RunDir != "")
            RunFiles.Remove(RunDir);
        if (stops.Any(t => t.IsCompletedSuccessfully))
            Log.LogMessage(MessageImportance.High, $"Stopped {string.Join("; ", stops.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result))}.");
        // The machines a test host booted for itself, when it was killed before it could stop them.
        if (chrootsDir is not null && machines.Count > 0)
            foreach (var what in await MachineRegistry.ReapAsync([chrootsDir], CancellationToken.None))
                Progress($"Removed a leftover of a process that is gone: {what}.");
    }
}
