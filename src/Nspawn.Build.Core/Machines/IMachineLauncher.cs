namespace Nspawn.Build;

/// <summary>One way of running nspawn: in a transient unit of the host's systemd, or as our own child.</summary>
internal interface IMachineLauncher
{
    /// <summary>The tools this way needs; throws NSPAWN0002 or NSPAWN0003.</summary>
    void Check();

    /// <summary>Boots the machine and returns at READY=1; when it cannot, stops what it started and throws.</summary>
    Task<Machine> StartAsync(LaunchOptions options, CancellationToken cancellationToken);

    /// <summary>
    /// Asks the guest to power off, waits up to the machine's stop timeout, then (after <paramref name="beforeKill"/>, which
    /// may still reach the stuck guest) kills what is left; false when it had to kill.
    /// </summary>
    Task<bool> PowerOffAsync(Machine machine, Func<Task>? beforeKill, CancellationToken cancellationToken);
}
