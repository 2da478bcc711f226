using System.Collections.Concurrent;

namespace Nspawn.Build.Tests;

/// <summary>
/// Stands in for the launcher of a warm pool (MachinePool.Start's start and stop): no root, no machine. A boot runs
/// <c>boot</c> (which may wait or throw) and returns a machine whose leader is this process; it counts the boots under
/// way and those begun once the test said the stop began.
/// </summary>
internal sealed class FakeLauncher(Func<LaunchOptions, CancellationToken, Task>? boot = null)
{
    private int _begun;
    private int _running;
    private int _begunAfterStop;

    public int Begun => Volatile.Read(ref _begun);
    public int Running => Volatile.Read(ref _running);
    public int BegunAfterStop => Volatile.Read(ref _begunAfterStop);
    public ConcurrentQueue<string> Started { get; } = new();
    public ConcurrentQueue<string> Stopped { get; } = new();
    /// <summary>The stop timeout each stop was given.</summary>
    public ConcurrentQueue<TimeSpan> StopTimeouts { get; } = new();

    /// <summary>Set by the test just before it stops the pool.</summary>
    public volatile bool Stopping;

    /// <summary>The machines whose stop throws (synchronously: the worst a stop can do).</summary>
    public Func<Machine, bool> FailStop { get; set; } = _ => false;

    public async Task<Machine> StartAsync(LaunchOptions options, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _begun);
        if (Stopping)
            Interlocked.Increment(ref _begunAfterStop);
        Interlocked.Increment(ref _running);
        try
        {
            if (boot is not null)
                await boot(options, cancellationToken);
            var self = Environment.ProcessId;
            var start = ProcessInfo.StartTime(self)!.Value;
            Started.Enqueue(options.MachineName);
            return new Machine(options.LogicalName, options.MachineName, options.Image, options.ImageDir, self, start, self, start, null, null, []);
        }
        finally
        {
            Interlocked.Decrement(ref _running);
        }
    }

    public Task<StopOutcome> StopAsync(Machine machine, CancellationToken cancellationToken)
    {
        if (FailStop(machine))
            throw new NspawnException(ErrorCodes.StopFailed, $"{machine.Name} would not stop.");
        Stopped.Enqueue(machine.Name);
        StopTimeouts.Enqueue(machine.StopTimeout);
        return Task.FromResult(new StopOutcome(machine, true, TimeSpan.Zero));
    }
}
