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
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _boots = [];
    // Stops of the machines tests handed back: the next test does not wait for them.
    private readonly List<Task> _stops = [];
    private int _served;
    private readonly ConcurrentBag<string> _names = [];
    private readonly ConcurrentQueue<string> _problems = new();
    private Task _loop = Task.CompletedTask;
    private Task<IReadOnlyList<StopOutcome>>? _stopped;
    private int _failures;

    private MachinePool(LaunchOptions template, int size, string dir)
    {
        _template = template;
        _size = size;
        Dir = dir;
    }

    /// <summary>The folder the tests take machines from (NSPAWN_POOL_DIR).</summary>
    public string Dir { get; }

    /// <summary>Starts booting <paramref name="size"/> machines like <paramref name="model"/> (the first machine), and returns at once.</summary>
    public static MachinePool Start(LaunchOptions model, int size, string runDir)
    {
        // A test's own machine: its logs are not saved and it is never kept. Its name is a test's own machine's by
        // default (StartOptions.LogicalName), which on a private network is its hostname and its name in the hosts file.
        var template = model with { LogicalName = Defaults.OwnMachineName, ResultsDir = null, KeepOnFailure = false, KeepLogs = KeepLogs.Never, Binds = [] };
        var dir = PoolDir.Create(runDir, new PoolTemplate(template.ImageDir, template.Mode, template.StopTimeout, template.Network, template.LogicalName, template.PrivateUsers));
        var pool = new MachinePool(template, size, dir);
        pool._loop = Task.Run(pool.RunAsync);
        return pool;
    }

    private async Task RunAsync()
    {
        while (!_stop.IsCancellationRequested && Volatile.Read(ref _failures) < GiveUpAfter)
        {
            lock (_boots)
            {
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
            var machine = await MachineLauncher.StartAsync(options, _stop.Token);
            PoolDir.Offer(Dir, machine);
            Interlocked.Exchange(ref _failures, 0);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // The launcher took down what it had started.
        }
        catch (Exception e) when (e is NspawnException or IOException or UnauthorizedAccessException)
        {
            _problems.Enqueue($"A machine of the warm pool (NspawnPoolSize) did not start; the tests boot their own when the pool has none: {e.Message}");
            if (Interlocked.Increment(ref _failures) == GiveUpAfter)
                PoolDir.MarkFailed(Dir, e.Message);
        }
    }

    private async Task StopReturnedAsync(Machine machine)
    {
        try
        {
            await MachineLauncher.StopAsync(machine, CancellationToken.None);
        }
        catch (NspawnException e)
        {
            _problems.Enqueue(e.Message);
        }
    }

    /// <summary>Ends the pool: no more boots, and every machine it booted that is still there is stopped (once, however often it is called).</summary>
    public Task<IReadOnlyList<StopOutcome>> StopAsync()
    {
        lock (_boots)
            return _stopped ??= StopAllAsync();
    }

    private async Task<IReadOnlyList<StopOutcome>> StopAllAsync()
    {
        _stop.Cancel();
        await _loop;
        Task[] boots;
        lock (_boots)
            boots = [.. _boots, .. _stops];
        await Task.WhenAll(boots);
        // Handed back since the loop ended: stopped with the rest below.
        _served += PoolDir.TakeReturned(Dir).Count;
        // Taken or not: a test that was killed before it stopped its machine leaves it to us.
        var left = MachineRegistry.List().Where(r => _names.Contains(r.Machine.Name)).ToList();
        var stops = left.Select(r => MachineLauncher.StopAsync(r.Machine, CancellationToken.None)).ToList();
        await Task.WhenAll(stops.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
        return stops.FirstOrDefault(t => t.IsFaulted) is { } failed
            ? throw failed.Exception!.InnerException!
            : stops.Select(t => t.Result).ToList();
    }

    /// <summary>Why machines of the pool did not start: said by the build as warnings when the pool is over (a task cannot log once it has returned).</summary>
    public IReadOnlyList<string> Problems => [.. _problems];

    /// <summary>What a build says once the pool is over.</summary>
    public string Describe(IReadOnlyList<StopOutcome> stopped) =>
        $"The pool of {_size} booted {_names.Count} machines; the tests took {_served + PoolDir.TakenCount(Dir)}; stopped {stopped.Count} left at the end.";
}
