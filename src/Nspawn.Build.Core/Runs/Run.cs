using System.Collections.Concurrent;

namespace Nspawn.Build;

/// <summary>
/// One run of a project's machines, from the boot to the end, the same wherever it runs: ContainerTest and NspawnOnTest
/// (StartEphemeral begins it, StopEphemeral or the end of the build ends it) and MTP mode (MachineSession). It owns the
/// private network, the machines, the warm pool and the run's folder (machines file, run settings, pool); its end
/// (<see cref="RunStop"/>: logs, kept machines, binds given back, the summary) waits for every machine it or its pool booted.
/// </summary>
internal sealed class Run
{
    private readonly object _gate = new();
    private readonly CancellationTokenSource _cancel = new();
    private readonly ConcurrentQueue<string> _messages = new();
    private readonly SemaphoreSlim _endOnce = new(1, 1);
    private readonly NetworkSettings? _networkSettings;
    private readonly IReadOnlyList<LaunchOptions> _options;
    private readonly Task<IReadOnlyList<Machine>> _boot;
    // What is left to end: the machines once booted (taken as each one's end is over), their network, the pool.
    private readonly List<Machine> _left = [];
    private PrivateNetwork? _network;
    private MachinePool? _pool;
    private bool _booted;
    private bool _handedOver;
    // Set by the first end: from then on ReadyAsync starts nothing (no machines file, no pool).
    private bool _ending;
    // The tests ran: the machines were handed to them (ReadyAsync completed, or a run whose machines were up already).
    private bool _ready;
    // What the first end was told: a later end (of what the first could not stop) ends it the same way.
    private bool? _testsFailed;

    private Run(string runDir, IReadOnlyList<LaunchOptions> options, NetworkSettings? network, string projectFile, Func<Run, Task<IReadOnlyList<Machine>>> boot)
    {
        RunDir = runDir;
        _options = options;
        _networkSettings = network;
        ProjectFile = projectFile;
        _boot = Task.Run(() => boot(this));
    }

    /// <summary>The run's folder (machines file, run settings, pool), made when the boot began; its key in the build.</summary>
    public string RunDir { get; }

    /// <summary>The project, for the command that stops kept machines.</summary>
    public string ProjectFile { get; }

    public DateTime Began { get; } = DateTime.UtcNow;

    /// <summary>The machines, once all came up.</summary>
    public IReadOnlyList<Machine> Machines { get; private set; } = [];

    /// <summary>The private network made for the machines (NspawnNetwork=private); null on the host's network or none.</summary>
    public PrivateNetwork? Network { get; private set; }

    /// <summary>
    /// Begins the boot in the background (ContainerTest begins it before Build): the private network, then every machine
    /// at once. A failed or canceled boot leaves nothing: the launcher takes down what it started, the network goes too.
    /// </summary>
    public static Run Begin(IReadOnlyList<LaunchOptions> options, NetworkSettings? network, string projectFile = "") =>
        new(RunFiles.Create(), options, network, projectFile, run => run.BootAsync(options, network));

    /// <summary>A run whose machines are up already (StopEphemeral given them as items, a test's pool): only its end is left.</summary>
    public static Run Started(IReadOnlyList<Machine> machines, PrivateNetwork? network, string? runDir, string projectFile = "", MachinePool? pool = null)
    {
        var run = new Run(runDir ?? "", [], null, projectFile, _ => Task.FromResult(machines)) { Network = network };
        run.Adopt(machines);
        (run._pool, run._ready) = (pool, true);
        return run;
    }

    private async Task<IReadOnlyList<Machine>> BootAsync(IReadOnlyList<LaunchOptions> options, NetworkSettings? network)
    {
        try
        {
            if (network?.Mode == NetworkMode.Private)
            {
                var made = Network = await NetworkRegistry.CreateAsync(network, _cancel.Token);
                _messages.Enqueue($"Made the private network {made.Bridge} ({made.Subnet}, the host at {made.Gateway}{(made.Outbound ? ", with a way out" : "")}).");
                options = options.Select(o => o with { PrivateNetwork = made }).ToList();
            }
            return await MachineLauncher.StartAllAsync(options, _messages.Enqueue, _cancel.Token);
        }
        catch
        {
            if (Network is { } made)
                await NetworkRegistry.RemoveAsync(made, CancellationToken.None);
            Network = null;
            throw;
        }
    }

    /// <summary>The booted machines become the run's to end (once), with their network.</summary>
    private void Adopt(IReadOnlyList<Machine> machines)
    {
        lock (_gate)
        {
            if (_booted)
                return;
            _booted = true;
            Machines = machines;
            _left.AddRange(machines);
            _network = Network;
        }
    }

    /// <summary>
    /// The machines once all are up; what the boot said goes to <paramref name="progress"/> however it went. Canceled
    /// with <paramref name="cancellationToken"/>, when the launcher takes down what it started. A failure removes the run's folder.
    /// </summary>
    public async Task<IReadOnlyList<Machine>> WaitAsync(Action<string> progress, CancellationToken cancellationToken)
    {
        try
        {
            using (cancellationToken.Register(_cancel.Cancel))
            {
                var machines = await _boot;
                Adopt(machines);
                return machines;
            }
        }
        catch
        {
            RunFiles.Remove(RunDir);
            throw;
        }
        finally
        {
            while (_messages.TryDequeue(out var message))
                progress(message);
        }
    }

    /// <summary>
    /// Waits for the machines, writes the machines file, starts the warm pool (<paramref name="poolSize"/> machines like
    /// the first), and returns the variables the tests get (NSPAWN_*).
    /// </summary>
    public async Task<IReadOnlyDictionary<string, string>> ReadyAsync(int poolSize, Action<string> progress, CancellationToken cancellationToken)
    {
        var machines = await WaitAsync(progress, cancellationToken);
        progress(MachineLauncher.Describe(machines, DateTime.UtcNow - Began));
        lock (_gate)
        {
            // An end that began meanwhile (a Ctrl+C, MTP's exit as the boot finished) ends these machines: nothing more starts.
            if (_ending)
                throw new OperationCanceledException("The run ended before its machines were handed to the tests.");
            var file = RunFiles.Write(RunDir, "machines.json", s => s.Write(System.Text.Encoding.UTF8.GetBytes(MachinesFile.Serialize(machines, _networkSettings?.Mode, Network))));
            var environment = MachinesFile.Environment(machines, file);
            if (poolSize > 0 && _options.Count > 0)
            {
                _pool = MachinePool.StartFor(_options[0], Network, poolSize, RunDir, progress);
                environment = new Dictionary<string, string>(environment) { [PoolDir.Variable] = _pool.Dir };
            }
            _ready = true;
            return environment;
        }
    }

    /// <summary>NspawnUp: the machines and their network live on past the run (recorded as the project's); only the run's folder goes.</summary>
    public void HandOver()
    {
        lock (_gate)
        {
            _handedOver = true;
            _left.Clear();
            _network = null;
        }
        RunFiles.Remove(RunDir);
    }

    /// <summary>
    /// Ends what is left of the run, in <see cref="RunStop"/>'s order: a boot still under way is canceled and waited for,
    /// the pool and every machine are ended side by side. Never throws: what failed comes back, for the caller to report.
    /// Called again (the end of the build after NspawnStopMachines), it ends only what the earlier end could not.
    /// </summary>
    public async Task<RunStopResult> EndAsync(bool testsFailed, Action<string> progress, Action<NspawnWarning> warn)
    {
        await _endOnce.WaitAsync();
        try
        {
            lock (_gate)
                _ending = true;
            if (!_boot.IsCompleted)
                _cancel.Cancel();
            try
            {
                Adopt(await _boot);
            }
            catch
            {
                // A failed or canceled boot took down what it started.
                Adopt([]);
            }
            // The boot's messages; a reporter that fails loses them, never the end.
            try
            {
                while (_messages.TryDequeue(out var message))
                    progress(message);
            }
            catch (Exception)
            {
            }
            List<Machine> machines;
            MachinePool? pool;
            PrivateNetwork? network;
            lock (_gate)
            {
                if (_handedOver)
                    return new RunStopResult([], []);
                (machines, pool, network) = ([.. _left], _pool, _network);
                (_pool, _network) = (null, null);
                // Tests that never got their machines did not fail.
                testsFailed = _testsFailed ??= testsFailed && _ready;
            }
            var result = await new RunStop
            {
                Machines = machines, Pool = pool, Network = network, RunDir = RunDir == "" ? null : RunDir, TestsFailed = testsFailed,
                ProjectFile = ProjectFile, Ended = Forget,
            }.RunAsync(progress, warn);
            // What failed to end is tried again by a later end (the end of the build after NspawnStopMachines).
            lock (_gate)
                (_pool, _network) = (_pool ?? (result.PoolLeft ? pool : null), _network ?? (result.NetworkLeft ? network : null));
            return result;
        }
        finally
        {
            _endOnce.Release();
        }
    }

    /// <summary>Booted and all ended (or handed over): nothing is left for a later end.</summary>
    public bool IsOver
    {
        get
        {
            lock (_gate)
                return _handedOver || (_booted && _left.Count == 0 && _pool is null && _network is null);
        }
    }

    /// <summary>A machine whose end is over (stopped or kept): a later end leaves it.</summary>
    private void Forget(Machine machine)
    {
        lock (_gate)
            _left.RemoveAll(m => m.Name == machine.Name);
    }
}
