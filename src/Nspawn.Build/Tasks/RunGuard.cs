using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// The one object the package leaves to the end of the build (registered once a build in each MSBuild process),
/// which ends whatever the targets did not, however the build ends (a failed VSTest, a compile error, Ctrl+C).
/// MSBuild disposes what tasks register in an order of its own, which changes from process to process; so there
/// is one holder, whose end has a fixed order: every run's (<see cref="RunEnd"/>, side by side), then the files
/// given back to the sudo user, which the machines may write until they stop. Each step runs even when one failed.
/// </summary>
internal sealed class RunGuard : IDisposable
{
    // The type itself: a copy of this assembly loaded for another project (another version or path) keeps a holder of its own.
    private static readonly Type Key = typeof(RunGuard);
    private static readonly object Registering = new();
    private readonly object _gate = new();
    // By run folder; and the last steps by what they give back, each once a build.
    private readonly Dictionary<string, RunEnd> _runs = [];
    private readonly Dictionary<string, Action> _last = [];

    /// <summary>This build's holder, registered on first use.</summary>
    public static RunGuard Of(IBuildEngine4 engine)
    {
        lock (Registering)
        {
            if (engine.GetRegisteredTaskObject(Key, RegisteredTaskObjectLifetime.Build) is RunGuard guard)
                return guard;
            guard = new RunGuard();
            engine.RegisterTaskObject(Key, guard, RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
            return guard;
        }
    }

    /// <summary>The run of the folder <paramref name="runDir"/> (BackgroundStart.RunDir), made on first use.</summary>
    public RunEnd Run(string runDir)
    {
        lock (_gate)
        {
            if (!_runs.TryGetValue(runDir, out var run))
                _runs[runDir] = run = new RunEnd(runDir);
            return run;
        }
    }

    /// <summary>The run of that folder, or null when none was begun.</summary>
    public RunEnd? Find(string runDir)
    {
        lock (_gate)
            return _runs.GetValueOrDefault(runDir);
    }

    /// <summary>
    /// Under sudo, what this build wrote in the user's tree goes back to the user when the build ends, however it ends,
    /// which is when a user is most often left with a root-owned obj/.
    /// </summary>
    public void ReturnOwnership(IReadOnlyList<string> folders, IReadOnlyList<string> shallowFolders, string? chrootsDir)
    {
        // Who and since when are taken now: at the build's end, a reused MSBuild node may hold another build's environment.
        if (Ownership.SudoUser is not { } user)
            return;
        var since = Ownership.BuildStart;
        AtEnd("Ownership:" + string.Join('\0', folders.Concat(shallowFolders)), () =>
        {
            Ownership.ReturnTo(user, since, folders, chrootsDir, recursive: true);
            Ownership.ReturnTo(user, since, shallowFolders, chrootsDir, recursive: false);
        });
    }

    /// <summary>A step after every run's end, once for each <paramref name="key"/>.</summary>
    internal void AtEnd(string key, Action step)
    {
        lock (_gate)
            _last.TryAdd(key, step);
    }

    public void Dispose()
    {
        // Nothing left to report to but the console; the next run's reaper gets what remains.
        foreach (var failure in EndAsync().GetAwaiter().GetResult().Where(e => e is not OperationCanceledException))
            Console.Error.WriteLine($"Nspawn.Build: at the end of the build: {failure.Message}");
    }

    /// <summary>Ends what is left; never throws: the failures come back in order.</summary>
    internal async Task<IReadOnlyList<Exception>> EndAsync()
    {
        List<RunEnd> runs;
        List<Action> last;
        lock (_gate)
        {
            (runs, last) = ([.. _runs.Values], [.. _last.Values]);
            _runs.Clear();
            _last.Clear();
        }
        // Runs share nothing: they end side by side, each in its own order.
        var failures = (await Task.WhenAll(runs.Select(r => r.EndAsync()))).SelectMany(f => f).ToList();
        failures.AddRange(await OrderedEnd.RunAsync([.. last.Select(step => (Func<Task>)(() => Task.Run(step)))]));
        return failures;
    }
}
