namespace Nspawn.Build;

/// <summary>
/// The machines one process boots for its own tests and stops at their end: in Microsoft.Testing.Platform mode,
/// the test host controller's (the package's MTP extension), which outlives the test host however it ends.
/// Machines are recorded with this process as their owner, so the reaper gets them should it be killed.
/// </summary>
internal sealed class MachineSession(LaunchPlan plan)
{
    private readonly object _gate = new();
    private Run? _run;
    private Task? _stop;

    public IReadOnlyList<LaunchOptions> Options => plan.Machines;

    private IEnumerable<string> ChrootsDirs => Options.Select(o => Path.GetDirectoryName(o.ImageDir)!).Distinct();

    /// <summary>The session a launch file describes, or null when there is none.</summary>
    public static MachineSession? FromLaunchFile(string path) =>
        LaunchFile.Read(path) is { Machines.Count: > 0 } launch
            // The launch file sits next to the test application: its folder is the tests' output folder, for InvokeAsync.
            ? new MachineSession(launch with { Machines = launch.Machines.Select(o => o with { CodeDir = Path.GetDirectoryName(Path.GetFullPath(path)) }).ToList() }) : null;

    /// <summary>Removes what killed runs left, boots every machine at once, and returns the variables the tests get (NSPAWN_*).</summary>
    public async Task<IReadOnlyDictionary<string, string>> StartAsync(Action<string> progress, CancellationToken cancellationToken)
    {
        foreach (var o in Options)
            MachineLauncher.Check(o);
        foreach (var what in await MachineRegistry.ReapAsync(ChrootsDirs, w => progress("warning " + w.Code + ": " + w.Message), cancellationToken))
            progress($"Removed a leftover of an earlier run: {what}.");
        // A backstop for an exit that skips the normal stop (an error in the host, a SIGTERM), there before the boot begins.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            StopAsync(testsFailed: false, _ => { }).ContinueWith(_ => { }, TaskScheduler.Default).Wait();
            ReturnOwnership();
        };
        // The same run as the build's: the network first, then every machine at once; on a failure, nothing left.
        Run run;
        lock (_gate)
            run = _run = Run.Begin(Options, plan.Network, plan.ProjectFile);
        return await run.ReadyAsync(plan.PoolSize, progress, cancellationToken);
    }

    /// <summary>
    /// Ends the run as the build ends one (<see cref="Run.EndAsync"/>: logs saved, machines kept after failed tests, the pool
    /// stopped), once however often it is called; then gives back what the run wrote under sudo. Throws the first failure once all is done.
    /// </summary>
    public Task StopAsync(bool testsFailed, Action<string> progress)
    {
        lock (_gate)
            // Nothing begun yet: nothing to end, and a later stop still ends what begins.
            return _run is not { } run ? Task.CompletedTask : _stop ??= StopAllAsync(run, testsFailed, progress);
    }

    private async Task StopAllAsync(Run run, bool testsFailed, Action<string> progress)
    {
        var end = await run.EndAsync(testsFailed, progress, w => progress($"warning {w.Code}: {w.Message}"));
        // Last: the machines may write in the user's tree until they stop.
        ReturnOwnership();
        if (end.Failures.Count > 0)
            throw end.Failures[0];
    }

    /// <summary>Under sudo, what this run wrote in the user's tree (test results, logs) goes back to the user, as after a build.</summary>
    private void ReturnOwnership()
    {
        if (Ownership.SudoUser is not { } user)
            return;
        try
        {
            Ownership.ReturnTo(user, Ownership.BuildStart, plan.ReturnOwnership, ChrootsDirs.FirstOrDefault(), recursive: true);
        }
        catch (IOException)
        {
            // Nothing to report to at the end of the run: the files stay root's.
        }
    }
}
