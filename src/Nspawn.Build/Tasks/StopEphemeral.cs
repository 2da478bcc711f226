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
        var machines = Machines.Select(ResolvedItems.ToMachine).ToList();
        // Taken back from the end of the build as each is ended here; what fails to end is left to it. The pool's machines stop beside the others.
        var run = RunDir == "" ? null : RunGuard.Of(BuildEngine4).Find(RunDir);
        var pool = run?.TakePool();
        var poolStop = pool?.StopAsync() ?? Task.FromResult<IReadOnlyList<StopOutcome>>([]);
        // End them all even when one fails or the build is canceled: a stop is never cut short. Each failure is logged once.
        var ends = machines.Select(async m =>
        {
            var end = await MachineEnd.FinishAsync(m, TestsFailed, CancellationToken.None);
            run?.Forget(m);
            return end;
        }).ToList();
        await Task.WhenAll(ends.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
        await poolStop.ContinueWith(_ => { }, TaskScheduler.Default);
        LogFailures([.. ends, poolStop]);
        foreach (var problem in pool?.Problems ?? [])
            LogWarning(new NspawnWarning(ErrorCodes.PoolBootFailed, problem));
        if (pool is not null && poolStop.IsCompletedSuccessfully)
            Progress(pool.Describe(poolStop.Result));
        if (RunDir != "")
            RunFiles.Remove(RunDir);
        // The machines a test host booted for itself, when it was killed before it could stop them.
        if (chrootsDir is not null && machines.Count > 0)
            // Its warnings were given by the reaper at the start (said once a run).
            foreach (var what in await MachineRegistry.ReapAsync([chrootsDir], _ => { }, CancellationToken.None))
                Progress($"Removed a leftover of a process that is gone: {what}.");
        var done = ends.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result).ToList();
        Ownership.ReturnBinds(Ownership.SudoUser, done.Where(e => !e.Kept).Select(e => e.Machine), chrootsDir);
        if (Network.Length > 0)
            run?.ForgetNetwork();
        await RemoveNetworksAsync(keep: done.Any(e => e.Kept));
        var saved = done.Select(e => e.Logs).OfType<SavedLogs>().ToList();
        foreach (var logs in saved)
            Progress($"Saved the logs of {logs}.");
        try
        {
            foreach (var trx in TrxAttachments.Add(saved))
                Progress($"Listed the saved logs in {trx}.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NspawnException)
        {
            Log.LogWarning($"The saved logs could not be listed in the TRX files: {e.Message}");
        }
        if (done.Any(e => !e.Kept))
            Progress($"Stopped {string.Join("; ", done.Where(e => !e.Kept).Select(e => e.Stopped))}.");
        foreach (var kept in done.Where(e => e.Kept))
            Progress(KeptMachines.Describe(kept.Machine, ProjectFile));
        // Said again in the error, which Terminal Logger shows where it hides messages.
        Summary = (done.Any(e => e.Kept) ? "Their machines were kept running" : "Their machines were stopped")
                  + (saved.Count == 0 ? "." : $"; their logs are in {string.Join(", ", saved.Select(s => Path.GetDirectoryName(s.Dir)).Distinct())}.")
                  + string.Concat(done.Where(e => e.Kept).Select(e => " " + KeptMachines.Describe(e.Machine, ProjectFile)));
    }

    /// <summary>The build's private network goes with its machines; one a kept machine is on stays until NspawnStopKept or the reaper.</summary>
    private async Task RemoveNetworksAsync(bool keep)
    {
        foreach (var network in Network.Select(ResolvedItems.ToPrivateNetwork))
        {
            if (keep)
                continue;
            await NetworkRegistry.RemoveAsync(network, CancellationToken.None);
            Progress($"Removed the private network {network.Bridge} ({network.Subnet}).");
        }
    }

    private async Task StopKeptAsync(string? chrootsDir)
    {
        var kept = chrootsDir is null ? [] : KeptMachines.In(chrootsDir);
        var stops = kept.Select(m => MachineLauncher.StopAsync(m, CancellationToken.None)).ToList();
        await Task.WhenAll(stops.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
        LogFailures(stops);
        Ownership.ReturnBinds(Ownership.SudoUser, stops.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result.Machine), chrootsDir);
        foreach (var what in await NetworkRegistry.ReapAsync(CancellationToken.None))
            Progress($"Removed the {what}.");
        Progress(kept.Count == 0
            ? $"No kept machine runs from {chrootsDir}."
            : $"Stopped the kept machines {string.Join("; ", stops.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result))}.");
    }

    private void LogFailures(IEnumerable<Task> tasks)
    {
        foreach (var failure in tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!))
            if (Expected(failure) is { } coded)
                LogError(coded);
            else
                Log.LogErrorFromException(failure, showStackTrace: true);
    }
}
