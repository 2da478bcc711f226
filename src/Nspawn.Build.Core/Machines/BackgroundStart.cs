using System.Collections.Concurrent;

namespace Nspawn.Build;

/// <summary>
/// The machines booting while the project compiles (ContainerTest begins the boot before Build and waits for it
/// after), or while MTP's test host controller waits for them (MachineSession): the private network, then every
/// machine at once. What the boot says is kept until someone can log it; <see cref="AbandonAsync"/> takes down what it started
/// when nobody waits for it (the build failed or was canceled first).
/// </summary>
internal sealed class BackgroundStart
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly ConcurrentQueue<string> _messages = new();
    private readonly Task<IReadOnlyList<Machine>> _start;

    private BackgroundStart(IReadOnlyList<LaunchOptions> options, NetworkSettings? network)
    {
        RunDir = RunFiles.Create();
        _start = Task.Run(() => StartAsync(options, network));
    }

    /// <summary>The private network made for the machines (NspawnNetwork=private); null on the host's network or none.</summary>
    public PrivateNetwork? Network { get; private set; }

    /// <summary>The run's folder (machines file, run settings, pool), made when the boot began.</summary>
    public string RunDir { get; }

    public DateTime Began { get; } = DateTime.UtcNow;

    /// <summary>What the boot said (machines stopped because another did not start).</summary>
    public IReadOnlyList<string> Messages => [.. _messages];

    public static BackgroundStart Begin(IReadOnlyList<LaunchOptions> options, NetworkSettings? network) => new(options, network);

    private async Task<IReadOnlyList<Machine>> StartAsync(IReadOnlyList<LaunchOptions> options, NetworkSettings? network)
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
            await RemoveNetworkAsync();
            throw;
        }
    }

    private async Task RemoveNetworkAsync()
    {
        if (Network is { } network)
            await NetworkRegistry.RemoveAsync(network, CancellationToken.None);
        Network = null;
    }

    /// <summary>The machines once all are up; canceled with <paramref name="cancellationToken"/>, when the launcher takes down what it started. A failure removes the run's folder.</summary>
    public async Task<IReadOnlyList<Machine>> WaitAsync(CancellationToken cancellationToken)
    {
        using (cancellationToken.Register(_cancel.Cancel))
        {
            try
            {
                return await _start;
            }
            catch
            {
                RunFiles.Remove(RunDir);
                throw;
            }
        }
    }

    /// <summary>Nobody will wait: the boot is canceled and what came up is stopped.</summary>
    public async Task AbandonAsync()
    {
        _cancel.Cancel();
        try
        {
            await Task.WhenAll((await _start).Select(m => MachineLauncher.StopAsync(m, CancellationToken.None)));
        }
        finally
        {
            RunFiles.Remove(RunDir);
            await RemoveNetworkAsync();
        }
    }
}
