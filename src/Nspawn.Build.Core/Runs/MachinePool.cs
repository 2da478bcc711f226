using System.Collections.Concurrent;

namespace Nspawn.Build;

/// <summary>
/// A warm pool (NspawnPoolSize): keeps <c>size</c> machines of one image booted ahead, offered to the tests through
/// <see cref="PoolDir"/>; each one a test takes is replaced by a fresh one booting behind it. Its machines are
/// recorded as this process's like every other (the reaper gets them if it is killed), and <see cref="StopAsync"/>
/// stops every one it booted that is still there, taken or not.
/// </summary>
internal sealed class MachinePool
{
    /// <summary>How often the pool looks for taken machines to replace: the longest a refill waits.</summary>
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(20);
    /// <summary>Boots that fail in a row before the pool gives up (the tests then boot their own).</summary>
    private const int GiveUpAfter = 3;

    private readonly LaunchOptions _template;
    private readonly int _size;
    private readonly Func<LaunchOptions, CancellationToken, Task<Machine>> _startMachine;
    private readonly Func<Machine, CancellationToken, Task<StopOutcome>> _stopMachine;
    private readonly CancellationTokenSource _stop = new();
    // Set under the lock on _boots, which the loop boots under: once a stop began, no boot begins.
    private bool _stopping;
    private readonly List<Task> _boots = [];
    // Stops of the machines tests handed back: the next test does not wait for them.
    private readonly List<Task> _stops = [];
    private int _served;
    private readonly ConcurrentBag<string> _names = [];
    // Every machine it booted and has not stopped yet: its end stops them, whatever became of the hand-off folder.
    private readonly ConcurrentDictionary<string, Machine> _booted = new();
    private readonly ConcurrentQueue<string> _problems = new();
    private Task _loop = Task.CompletedTask;
    private Task<IReadOnlyList<StopOutcome>>? _stopped;
    private int _failures;

    private MachinePool(LaunchOptions template, int size, string dir, Func<LaunchOptions, CancellationToken, Task<Machine>> start, Func<Machine, CancellationToken, Task<StopOutcome>> stop)
    {
        _template = template;
        _size = size;
        Dir = dir;
        _startMachine = start;
        _stopMachine = stop;
    }

    /// <summary>The folder the tests take machines from (NSPAWN_POOL_DIR).</summary>
    public string Dir { get; }

    /// <summary>The loop that boots: it ends once the pool begins no more boots (stopped, given up, or its run is over).</summary>
    internal Task Loop => _loop;

    /// <summary>
    /// The pool of a run (NspawnPoolSize), as the build and the MTP extension start it once the run's machines are up:
    /// it boots behind the tests' start (the test host's launch, discovery). Like the first machine, but without its
    /// binds (a test's own machine gets none unless it asks), on the run's private network if any.
    /// </summary>
    public static MachinePool StartFor(LaunchOptions first, PrivateNetwork? network, int size, string runDir, Action<string> progress)
    {
        var pool = Start(first with { Binds = [], PrivateNetwork = network }, size, runDir);
        progress($"Keeping {size} machines of image '{first.Image}' booted ahead for the tests (NspawnPoolSize).");
        return pool;
    }

    /// <summary>
    /// Starts booting <paramref name="size"/> machines like <paramref name="model"/> (the first machine), and returns at once.
    /// <paramref name="start"/> and <paramref name="stop"/> stand in for the launcher in unit tests.
    /// </summary>
    public static MachinePool Start(LaunchOptions model, int size, string runDir,
        Func<LaunchOptions, CancellationToken, Task<Machine>>? start = null, Func<Machine, CancellationToken, Task<StopOutcome>>? stop = null)
    {
        // A test's own machine: its logs are not saved and it is never kept. Its name is a test's own machine's by
        // default (StartOptions.LogicalName), which on a private network is its hostname and its name in the hosts file.
        var template = model with { LogicalName = Defaults.OwnMachineName, ResultsDir = null, KeepOnFailure = false, KeepLogs = KeepLogs.Never, Binds = [] };
        var dir = PoolDir.Create(runDir, new PoolTemplate(template.ImageDir, template.Mode, template.StopTimeout, template.Network, template.PrivateUsers, template.LogicalName));
        var pool = new MachinePool(template, size, dir, start ?? MachineLauncher.StartAsync, stop ?? ((m, ct) => MachineLauncher.StopAsync(m, ct)));
        pool._loop = Task.Run(pool.RunAsync);
        return pool;
    }

    private async Task RunAsync()
    {
        while (Volatile.Read(ref _failures) < GiveUpAfter)
        {
            lock (_boots)
            {
                // Stopped, or the run's folder is gone (the run is over): no test can take a machine any more.
                if (_stopping || !Directory.Exists(Dir))
                    return;
                foreach (var machine in PoolDir.TakeReturned(Dir))
                {
                    _served++;
                    _stops.Add(StopReturnedAsync(machine));
                }
                _boots.RemoveAll(t => t.IsCompleted);
                for (var n = PoolDir.ReadyCount(Dir) + _boots.Count; n < _size; n++)
                    _boots.Add(BootAsync());
            }
            try
            {
                await Task.Delay(Poll, _stop.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private async Task BootAsync()
    {
        // Named as the pool's (nspawn-pool-XXXXXXXX), whatever name the test gives it.
        var options = _template with { MachineName = TempNames.Machine("pool") };
        _names.Add(options.MachineName);
        try
        {
            var machine = await _startMachine(options, _stop.Token);
            _booted[machine.Name] = machine;
            // Up only after the stop began: nobody will take it, the stop's sweep stops it.
            if (_stop.IsCancellationRequested)
                return;
            PoolDir.Offer(Dir, machine);
            Interlocked.Exchange(ref _failures, 0);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // The launcher took down what it had started.
        }
        catch (Exception e)
        {
            // Whatever went wrong, it is said as a warning when the pool is over, and never thrown out of its stop.
            _problems.Enqueue($"A machine of the warm pool (NspawnPoolSize) did not start; the tests boot their own when the pool has none: {e.Message}");
            if (Interlocked.Increment(ref _failures) == GiveUpAfter)
                MarkFailed(e.Message);
        }
    }

    private void MarkFailed(string why)
    {
        try
        {
            PoolDir.MarkFailed(Dir, why);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The run's folder is gone: no test is left to tell.
        }
    }

    private async Task StopReturnedAsync(Machine machine)
    {
        try
        {
            await _stopMachine(Discarded(machine), CancellationToken.None);
            _booted.TryRemove(machine.Name, out _);
        }
        catch (NspawnException e)
        {
            // Left in _booted: the pool's end tries again.
            _problems.Enqueue(e.Message);
        }
    }

    /// <summary>
    /// Ends the pool: no more boots, and every machine it booted that is still there is stopped (once, however often it
    /// is called; again only after a stop that failed, for the machines it left).
    /// </summary>
    public Task<IReadOnlyList<StopOutcome>> StopAsync()
    {
        lock (_boots)
        {
            _stopping = true;
            if (_stopped is null || _stopped.IsFaulted)
                _stopped = Task.Run(StopAllAsync);
            return _stopped;
        }
    }

    private async Task<IReadOnlyList<StopOutcome>> StopAllAsync()
    {
        // Boots under way are canceled; the launcher takes down what they had started.
        _stop.Cancel();
        await Observed(_loop);
        Task[] pending;
        lock (_boots)
            pending = [_loop, .. _boots, .. _stops];
        // Every boot it began ends before anything else goes, and nothing that failed throws before the sweep.
        await Task.WhenAll(pending.Select(Observed));
        foreach (var faulted in pending.Where(t => t.IsFaulted))
            _problems.Enqueue(faulted.Exception!.InnerException!.Message);
        // Taken or not: a test that was killed before it handed its machine back leaves it to us; and any machine a
        // failed boot recorded but could not take down.
        var left = new Dictionary<string, Machine>(_booted);
        foreach (var machine in Recorded().Where(m => !left.ContainsKey(m.Name)))
            left[machine.Name] = machine;
        var stops = left.Values.Select(StopLeftAsync).ToList();
        await Task.WhenAll(stops.Select(Observed));
        try
        {
            // Handed back since the loop ended: stopped with the rest above, counted for Describe.
            _served += PoolDir.TakeReturned(Dir).Count;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
        }
        return stops.FirstOrDefault(t => t.IsFaulted) is { } failed
            ? throw failed.Exception!.InnerException!
            : stops.Select(t => t.Result).ToList();
    }

    private async Task<StopOutcome> StopLeftAsync(Machine machine)
    {
        var stopped = await _stopMachine(Discarded(machine), CancellationToken.None);
        _booted.TryRemove(machine.Name, out _);
        return stopped;
    }

    /// <summary>
    /// A pool's machine that is done with (handed back, or never taken) is killed at once instead of powered off: its
    /// snapshot is thrown away, it has no binds and no logs to save, and on 2 cores a guest's shutdown takes the CPU
    /// that the next machine's boot needs.
    /// </summary>
    private static Machine Discarded(Machine machine) => machine with { StopTimeout = TimeSpan.Zero };

    private IEnumerable<Machine> Recorded()
    {
        try
        {
            return MachineRegistry.List().Select(r => r.Machine).Where(m => _names.Contains(m.Name)).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static Task Observed(Task task) => task.ContinueWith(_ => { }, TaskScheduler.Default);

    /// <summary>Why machines of the pool did not start: said by the build as warnings when the pool is over (a task cannot log once it has returned).</summary>
    public IReadOnlyList<string> Problems => [.. _problems];

    /// <summary>What a build says once the pool is over.</summary>
    public string Describe(IReadOnlyList<StopOutcome> stopped) =>
        $"The pool of {_size} booted {_names.Count} machines; the tests took {_served + PoolDir.TakenCount(Dir)}; stopped {stopped.Count} left at the end.";
}
