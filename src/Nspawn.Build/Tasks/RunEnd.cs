namespace Nspawn.Build.Tasks;

/// <summary>
/// What one run (the machines of one StartEphemeral) has left to end, told as it becomes known: the boot begun before
/// Build, then the machines, their private network and the warm pool. StopEphemeral takes back what it ends itself;
/// what is left is ended by <see cref="RunGuard"/> when the build ends, in a fixed order: the pool first (it begins no
/// boot once its stop began, and waits for those under way, which join the network), then the machines, the network,
/// the run's folder. Each step runs even when an earlier one failed.
/// </summary>
internal sealed class RunEnd(string runDir)
{
    private readonly object _gate = new();
    private BackgroundStart? _boot;
    private MachinePool? _pool;
    private readonly List<Machine> _machines = [];
    private PrivateNetwork? _network;
    // NspawnOnVSTest: a failing VSTest ends the build before the targets can stop the machines, so a machine left
    // to the end of the build is one whose tests failed: its logs are saved and it may be kept.
    private bool _leftMeansFailed;
    private string _projectFile = "";

    /// <summary>The boot begun before Build (StartEphemeral with Begin), until NspawnStartMachines waits for it.</summary>
    public void SetBoot(BackgroundStart boot)
    {
        lock (_gate)
            _boot = boot;
    }

    /// <summary>The boot, no longer left to the end of the build; null when there is none.</summary>
    public BackgroundStart? TakeBoot()
    {
        lock (_gate)
            return Interlocked.Exchange(ref _boot, null);
    }

    /// <summary>The machines the boot started and their private network, if any.</summary>
    public void Started(IReadOnlyList<Machine> machines, PrivateNetwork? network, bool leftMeansFailed, string projectFile)
    {
        lock (_gate)
        {
            _machines.AddRange(machines);
            _network = network;
            _leftMeansFailed = leftMeansFailed;
            _projectFile = projectFile;
        }
    }

    public void SetPool(MachinePool pool)
    {
        lock (_gate)
            _pool = pool;
    }

    /// <summary>The pool, no longer left to the end of the build; null when there is none.</summary>
    public MachinePool? TakePool()
    {
        lock (_gate)
            return Interlocked.Exchange(ref _pool, null);
    }

    /// <summary>A machine StopEphemeral ended (stopped or kept).</summary>
    public void Forget(Machine machine)
    {
        lock (_gate)
            _machines.RemoveAll(m => m.Name == machine.Name);
    }

    /// <summary>The network StopEphemeral removed (or keeps for a kept machine).</summary>
    public void ForgetNetwork()
    {
        lock (_gate)
            _network = null;
    }

    /// <summary>Ends what is left, in order; never throws: the failures come back for the caller to report.</summary>
    public Task<IReadOnlyList<Exception>> EndAsync()
    {
        BackgroundStart? boot;
        MachinePool? pool;
        List<Machine> machines;
        PrivateNetwork? network;
        lock (_gate)
        {
            (boot, pool, machines, network) = (_boot, _pool, [.. _machines], _network);
            (_boot, _pool, _network) = (null, null, null);
            _machines.Clear();
        }
        List<Task<MachineEndResult>> ends = [];
        return OrderedEnd.RunAsync(
            async () =>
            {
                if (pool is not null)
                    await pool.StopAsync();
            },
            async () =>
            {
                if (boot is not null)
                    await boot.AbandonAsync();
            },
            async () =>
            {
                ends = machines.Select(m => MachineEnd.FinishAsync(m, _leftMeansFailed, CancellationToken.None)).ToList();
                await EndMachinesAsync(ends);
            },
            async () =>
            {
                // A kept machine's network stays, as after NspawnStopMachines: NspawnStopKept or the reaper removes it.
                if (network is not null && !ends.Any(t => t.IsCompletedSuccessfully && t.Result.Kept))
                    await NetworkRegistry.RemoveAsync(network, CancellationToken.None);
            },
            () => Task.Run(() => RunFiles.Remove(runDir)));
    }

    /// <summary>Waits for every machine's end and says what the user must know; throws the first failure once all are over.</summary>
    private async Task EndMachinesAsync(IReadOnlyList<Task<MachineEndResult>> ends)
    {
        await Task.WhenAll(ends.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
        var done = ends.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result).ToList();
        var saved = done.Select(e => e.Logs).OfType<SavedLogs>().ToList();
        // The build's loggers are gone by now: what the user must know goes to the console.
        foreach (var logs in saved)
            Console.Error.WriteLine($"Nspawn.Build: saved the logs of {logs}.");
        foreach (var end in done.Where(e => e.Kept))
            Console.Error.WriteLine("Nspawn.Build: " + KeptMachines.Describe(end.Machine, _projectFile));
        if (saved.Count > 0)
            foreach (var trx in TrxAttachments.Add(saved))
                Console.Error.WriteLine($"Nspawn.Build: listed the saved logs in {trx}.");
        if (ends.FirstOrDefault(t => t.IsFaulted) is { } failed)
            throw failed.Exception!.InnerException!;
    }
}
