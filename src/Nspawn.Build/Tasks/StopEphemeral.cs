using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// Ends the machines that StartEphemeral started: saves their logs when NspawnKeepLogs wants them, then stops
/// them gracefully, or forcefully after each one's stop timeout (or keeps them running, when the tests failed
/// and NspawnKeepOnFailure is set); fails if any nspawn or snapshot is left. With Reap, stops the machines of
/// builds that are gone instead; with StopKept, the kept machines.
/// </summary>
public sealed class StopEphemeral : NspawnTask
{
    /// <summary>StartEphemeral's StartedMachines.</summary>
    public ITaskItem[] Machines { get; set; } = [];
    /// <summary>The tests failed (or could not run): logs are saved (NspawnKeepLogs=failure) and machines kept (NspawnKeepOnFailure).</summary>
    public bool TestsFailed { get; set; }
    /// <summary>Instead: stop the machines of builds that are gone, and remove leftovers in the store's folder.</summary>
    public bool Reap { get; set; }
    /// <summary>StartEphemeral's RunDir: the machines file and run settings, removed with the machines.</summary>
    public string RunDir { get; set; } = "";
    /// <summary>Instead: stop the machines kept after failed tests (NspawnKeepOnFailure) whose images are in the store's folder.</summary>
    public bool StopKept { get; set; }
    /// <summary>Instead: stop the up machines of <see cref="ProjectFile"/> (NspawnDown).</summary>
    public bool Down { get; set; }
    /// <summary>Instead: stop every up machine on the host, of every project (NspawnDownAll).</summary>
    public bool DownAll { get; set; }
    /// <summary>Instead: list every up machine on the host (NspawnListUp).</summary>
    public bool ListUp { get; set; }
    /// <summary>ResolveNspawnSettings' Store: where Reap and StopKept look.</summary>
    public ITaskItem[] Store { get; set; } = [];
    /// <summary>StartEphemeral's StartedNetwork: removed once its machines are stopped.</summary>
    public ITaskItem[] Network { get; set; } = [];

    /// <summary>The project (MSBuildProjectFullPath), for the command that stops kept machines.</summary>
    public string ProjectFile { get; set; } = "";

    /// <summary>What became of the machines and where their logs are, for the error that reports failed tests.</summary>
    [Output] public string Summary { get; private set; } = "";

    private protected override async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var chrootsDir = Store.Length > 0 ? ResolvedItems.ToStore(Store).ChrootsDir : null;
        if (ListUp)
        {
            var up = UpMachines.All();
            Progress(up.Count == 0 ? "No up machine runs on this host." : $"Up machines (NspawnUp) on this host:{string.Concat(up.Select(r => "\n  " + UpMachines.Line(r)))}");
            return;
        }
        if (Reap || StopKept || Down || DownAll || Machines.Length > 0 || Network.Length > 0)
            Privilege.RequireRoot();
        if (Down || DownAll)
        {
            var records = DownAll ? UpMachines.All() : UpMachines.Of(Path.GetFullPath(ProjectFile));
            var stopped = await UpMachines.DownAsync(records, Ownership.SudoUser, Progress, cancellationToken);
            Progress(records.Count == 0
                ? DownAll ? "No up machine runs on this host." : $"No up machine runs for {ProjectFile}."
                : $"Stopped the up machines {string.Join("; ", stopped)}.");
            return;
        }
        if (Reap)
        {
            foreach (var what in await MachineRegistry.ReapAsync(chrootsDir is null ? [] : [chrootsDir], LogWarning, cancellationToken))
                Progress($"Removed a leftover of an earlier run: {what}.");
            return;
        }
        if (StopKept)
        {
            await StopKeptAsync(chrootsDir);
            return;
        }
        // The run this build began (it knows its pool), else the one the items describe; what fails to end is left to the end of the build.
        var guard = RunGuard.Of(BuildEngine4);
        var run = (RunDir == "" ? null : guard.Find(RunDir))
                  ?? Run.Started(Machines.Select(ResolvedItems.ToMachine).ToList(), Network.Select(ResolvedItems.ToPrivateNetwork).FirstOrDefault(), RunDir == "" ? null : RunDir, ProjectFile);
        // End them all even when one fails or the build is canceled: a stop is never cut short. Each failure is logged once.
        var result = await run.EndAsync(TestsFailed, Progress, w => LogWarning(w));
        if (run.IsOver)
            guard.Release(run);
        LogFailures(result.Failures);
        var done = result.Ended;
        var saved = result.Saved;
        // Said again in the error, which Terminal Logger shows where it hides messages.
        Summary = (done.Any(e => e.Kept) ? "Their machines were kept running" : "Their machines were stopped")
                  + (saved.Count == 0 ? "." : $"; their logs are in {string.Join(", ", saved.Select(s => Path.GetDirectoryName(s.Dir)).Distinct())}.")
                  + string.Concat(done.Where(e => e.Kept).Select(e => " " + KeptMachines.Describe(e.Machine, ProjectFile)));
    }

    private async Task StopKeptAsync(string? chrootsDir)
    {
        var kept = chrootsDir is null ? [] : KeptMachines.In(chrootsDir);
        var stops = kept.Select(m => MachineLauncher.StopAsync(m, CancellationToken.None)).ToList();
        await Task.WhenAll(stops.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
        LogFailures(stops.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!));
        Ownership.ReturnBinds(Ownership.SudoUser, stops.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result.Machine), chrootsDir);
        foreach (var what in await NetworkRegistry.ReapAsync(CancellationToken.None))
            Progress($"Removed the {what}.");
        Progress(kept.Count == 0
            ? $"No kept machine runs from {chrootsDir}."
            : $"Stopped the kept machines {string.Join("; ", stops.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result))}.");
    }

}
