namespace Nspawn.Build;

/// <summary>
/// The steps of a <see cref="Run"/>'s end, however it ends: NspawnStopMachines (StopEphemeral), the end of the build
/// for what the targets left (RunGuard), the MTP extension once the test host exited (MachineSession). In a fixed
/// order, each step run even when an earlier one failed: the warm pool and every machine side by side (logs saved as
/// NspawnKeepLogs wants, kept as NspawnKeepOnFailure wants, else stopped), the run's folder, the machines of test hosts that are gone, what the machines' root wrote in the binds, the private network (unless a kept machine is on it),
/// the saved logs listed in the TRX files. What the user must know goes to the caller's progress and warnings.
/// </summary>
internal sealed class RunStop
{
    public IReadOnlyList<Machine> Machines { get; init; } = [];
    public MachinePool? Pool { get; init; }
    /// <summary>The private network made for the machines; none on the host's network.</summary>
    public PrivateNetwork? Network { get; init; }
    /// <summary>The run's folder (machines file, run settings, pool), removed once the machines are stopped.</summary>
    public string? RunDir { get; init; }
    /// <summary>The tests failed (or could not run): logs are saved (NspawnKeepLogs=failure) and machines kept (NspawnKeepOnFailure).</summary>
    public bool TestsFailed { get; init; }
    /// <summary>The project, for the command that stops kept machines.</summary>
    public string ProjectFile { get; init; } = "";
    /// <summary>Told as each machine's end is over (stopped or kept): the build takes it back from its own end.</summary>
    public Action<Machine>? Ended { get; init; }

    /// <summary>The store's folder: where the machines of test hosts that are gone are looked for.</summary>
    private string? Store => Machines.Select(m => Path.GetDirectoryName(m.ImageDir)).FirstOrDefault();

    /// <summary>Ends the run; never throws: what failed comes back in order, for the caller to report.</summary>
    public async Task<RunStopResult> RunAsync(Action<string> progress, Action<NspawnWarning> warn)
    {
        List<Task<MachineEndResult>> ends = [];
        var poolStop = Task.FromResult<IReadOnlyList<StopOutcome>>([]);
        var networkLeft = false;
        IReadOnlyList<MachineEndResult> Done() => ends.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result).ToList();
        var failures = await OrderedEnd.RunAsync(
            async () =>
            {
                // The pool's machines stop beside the others; a stop is never cut short (each machine gets its stop timeout).
                poolStop = Pool?.StopAsync() ?? poolStop;
                ends = Machines.Select(async m =>
                {
                    var end = await MachineEnd.FinishAsync(m, TestsFailed, CancellationToken.None);
                    Ended?.Invoke(m);
                    return end;
                }).ToList();
                Task[] all = [.. ends, poolStop];
                await Task.WhenAll(all.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
                foreach (var problem in Pool?.Problems ?? [])
                    warn(new NspawnWarning(ErrorCodes.PoolBootFailed, problem));
                if (Pool is not null && poolStop.IsCompletedSuccessfully)
                    progress(Pool.Describe(poolStop.Result));
                if (all.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).ToList() is { Count: > 0 } failed)
                    throw failed.Count == 1 ? failed[0] : new AggregateException(failed);
            },
            () => Task.Run(() =>
            {
                if (RunDir is not null)
                    RunFiles.Remove(RunDir);
            }),
            async () =>
            {
                // The machines a test host booted for itself, when it was killed before it could stop them.
                // Its warnings were given by the reaper at the start (said once a run).
                if (Store is { } store && Machines.Count > 0)
                    foreach (var what in await MachineRegistry.ReapAsync([store], _ => { }, CancellationToken.None))
                        progress($"Removed a leftover of a process that is gone: {what}.");
            },
            () => Task.Run(() => Ownership.ReturnBinds(Ownership.SudoUser, Done().Where(e => !e.Kept).Select(e => e.Machine), Store)),
            async () =>
            {
                // A kept machine's network stays: NspawnStopKept or the reaper removes it.
                if (Network is { } network && !Done().Any(e => e.Kept))
                {
                    networkLeft = true;
                    await NetworkRegistry.RemoveAsync(network, CancellationToken.None);
                    networkLeft = false;
                    progress($"Removed the private network {network.Bridge} ({network.Subnet}).");
                }
            },
            () => Task.Run(() => Report(Done(), progress, warn)));
        // One failure each: a machine's or the pool's stop, as thrown; several at once were gathered above.
        return new RunStopResult(Done(), failures.SelectMany(e => e is AggregateException all ? all.InnerExceptions : (IEnumerable<Exception>)[e]).ToList(),
            Pool is not null && !poolStop.IsCompletedSuccessfully, networkLeft);
    }

    /// <summary>Where the logs are, the TRX files that list them, what was stopped and how to enter what was kept.</summary>
    private void Report(IReadOnlyList<MachineEndResult> done, Action<string> progress, Action<NspawnWarning> warn)
    {
        var saved = done.Select(e => e.Logs).OfType<SavedLogs>().ToList();
        foreach (var logs in saved)
            progress($"Saved the logs of {logs}.");
        try
        {
            foreach (var trx in TrxAttachments.Add(saved))
                progress($"Listed the saved logs in {trx}.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NspawnException)
        {
            // Not worth a code of its own: the logs are saved all the same.
            warn(new NspawnWarning("", $"The saved logs could not be listed in the TRX files: {e.Message}"));
        }
        if (done.Any(e => !e.Kept))
            progress($"Stopped {string.Join("; ", done.Where(e => !e.Kept).Select(e => e.Stopped))}.");
        foreach (var kept in done.Where(e => e.Kept))
            progress(KeptMachines.Describe(kept.Machine, ProjectFile));
    }
}
