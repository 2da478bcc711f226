namespace Nspawn.Build;

/// <summary>
/// The machines one process boots for its own tests and stops at their end: in Microsoft.Testing.Platform mode,
/// the test host controller's (the package's MTP extension), which outlives the test host however it ends.
/// Machines are recorded with this process as their owner, so the reaper gets them should it be killed.
/// </summary>
internal sealed class MachineSession(IReadOnlyList<LaunchOptions> options, NetworkSettings? network, IReadOnlyList<string> returnOwnership)
{
    private readonly object _gate = new();
    private IReadOnlyList<Machine> _machines = [];
    private string? _runDir;
    private PrivateNetwork? _network;
    private Task? _stop;

    public IReadOnlyList<LaunchOptions> Options { get; } = options;

    private IEnumerable<string> ChrootsDirs => Options.Select(o => Path.GetDirectoryName(o.ImageDir)!).Distinct();

    /// <summary>The session a launch file describes, or null when there is none.</summary>
    public static MachineSession? FromLaunchFile(string path) =>
        LaunchFile.Read(path) is { Machines.Count: > 0 } launch
            // The launch file sits next to the test application: its folder is the tests' output folder, for InvokeAsync.
            ? new MachineSession(launch.Machines.Select(o => o with { CodeDir = Path.GetDirectoryName(Path.GetFullPath(path)) }).ToList(), launch.Network, launch.ReturnOwnership) : null;

    /// <summary>Removes what killed runs left, boots every machine at once, and returns the variables the tests get (NSPAWN_*).</summary>
    public async Task<IReadOnlyDictionary<string, string>> StartAsync(Action<string> progress, CancellationToken cancellationToken)
    {
        foreach (var o in Options)
            MachineLauncher.Check(o);
        foreach (var what in await MachineRegistry.ReapAsync(ChrootsDirs, w => progress("warning " + w.Code + ": " + w.Message), cancellationToken))
            progress($"Removed a leftover of an earlier run: {what}.");
        // The same start as the build's (the network first, then every machine at once; on a failure, nothing left).
        var start = BackgroundStart.Begin(Options, network);
        _runDir = start.RunDir;
        // A backstop for an exit that skips the normal stop (an error in the host, a SIGTERM).
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            StopAsync(_ => { }).ContinueWith(_ => { }, TaskScheduler.Default).Wait();
            ReturnOwnership();
        };
        try
        {
            _machines = await start.WaitAsync(cancellationToken);
            _network = start.Network;
        }
        finally
        {
            foreach (var message in start.Messages)
                progress(message);
        }
        progress(MachineLauncher.Describe(_machines, DateTime.UtcNow - start.Began));
        var file = RunFiles.Write(_runDir, "machines.json", s => s.Write(System.Text.Encoding.UTF8.GetBytes(MachinesFile.Serialize(_machines, network?.Mode, _network))));
        return MachinesFile.Environment(_machines, file);
    }

    /// <summary>Stops every machine (once, however often it is called) and removes the machines file; throws the first failure once all is done.</summary>
    public Task StopAsync(Action<string> progress)
    {
        lock (_gate)
            return _stop ??= StopAllAsync(progress);
    }

    private async Task StopAllAsync(Action<string> progress)
    {
        List<Task<StopOutcome>> stops = [];
        // One end in a fixed order, each step run even when an earlier one failed: the machines, the run's folder,
        // the network, what their root wrote in the binds, leftovers, the user's files. Then the first failure.
        var failures = await OrderedEnd.RunAsync(
            async () =>
            {
                // A stop is never cut short: each machine gets its stop timeout.
                stops = _machines.Select(m => MachineLauncher.StopAsync(m, CancellationToken.None)).ToList();
                await Task.WhenAll(stops.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
                if (stops.Any(t => t.IsCompletedSuccessfully))
                    progress($"Stopped {string.Join("; ", stops.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result))}.");
                if (stops.FirstOrDefault(t => t.IsFaulted) is { } failed)
                    throw failed.Exception!.InnerException!;
            },
            () => Task.Run(() =>
            {
                if (_runDir is not null)
                    RunFiles.Remove(_runDir);
            }),
            RemoveNetworkAsync,
            () => Task.Run(() => Ownership.ReturnBinds(Ownership.SudoUser, stops.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result.Machine), ChrootsDirs.FirstOrDefault())),
            async () =>
            {
                // The test host's own machines, when it was killed before it could stop them.
                // Its warnings were given at the start (said once a run).
                foreach (var what in await MachineRegistry.ReapAsync(ChrootsDirs, _ => { }, CancellationToken.None))
                    progress($"Removed a leftover of a process that is gone: {what}.");
            },
            () => Task.Run(ReturnOwnership));
        if (failures.Count > 0)
            throw failures[0];
    }

    private async Task RemoveNetworkAsync()
    {
        if (Interlocked.Exchange(ref _network, null) is { } network)
            await NetworkRegistry.RemoveAsync(network, CancellationToken.None);
    }

    /// <summary>Under sudo, what this run wrote in the user's tree (test results, logs) goes back to the user, as after a build.</summary>
    private void ReturnOwnership()
    {
        if (Ownership.SudoUser is not { } user)
            return;
        try
        {
            Ownership.ReturnTo(user, Ownership.BuildStart, returnOwnership, ChrootsDirs.FirstOrDefault(), recursive: true);
        }
        catch (IOException)
        {
            // Nothing to report to at the end of the run: the files stay root's.
        }
    }
}
