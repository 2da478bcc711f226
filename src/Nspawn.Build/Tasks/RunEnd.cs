namespace Nspawn.Build.Tasks;

/// <summary>
/// What one run (the machines of one StartEphemeral) has left to end, told as it becomes known: the boot begun before
/// Build, then the machines, their private network and the warm pool. StopEphemeral takes back what it ends itself;
/// what is left is ended by <see cref="RunGuard"/> when the build ends: the boot begun before Build, then the run's end
/// that NspawnStopMachines has too (<see cref="RunStop"/>). Each step runs even when an earlier one failed.
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
    public async Task<IReadOnlyList<Exception>> EndAsync()
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
        var failures = (await OrderedEnd.RunAsync(async () =>
        {
            if (boot is not null)
                await boot.AbandonAsync();
        })).ToList();
        // The build's loggers are gone by now: what the user must know goes to the console.
        var end = await new RunStop { Machines = machines, Pool = pool, Network = network, RunDir = runDir, TestsFailed = _leftMeansFailed, ProjectFile = _projectFile }
            .RunAsync(m => Console.Error.WriteLine("Nspawn.Build: " + m), w => Console.Error.WriteLine($"Nspawn.Build: warning {w.Code}: {w.Message}"));
        return [.. failures, .. end.Failures];
    }
}
