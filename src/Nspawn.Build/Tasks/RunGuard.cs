using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// The one object the package leaves to the end of the build (registered once a build in each MSBuild process),
/// which ends whatever the targets did not, however the build ends (a failed VSTest, a compile error, Ctrl+C).
/// MSBuild disposes what tasks register in an order of its own, which changes from process to process; so there
/// is one holder, whose end has a fixed order: every run's end (<see cref="Run.EndAsync"/>, side by side), then the files
/// given back to the sudo user, which the machines may write until they stop. Each step runs even when one failed.
/// </summary>
internal sealed class RunGuard : IDisposable
{
    // The type itself: a copy of this assembly loaded for another project (another version or path) keeps a holder of its own.
    private static readonly Type Key = typeof(RunGuard);
    private static readonly object Registering = new();
    private readonly object _gate = new();
    // By run folder, with whether a machine left to the end is one of failed tests; and the last steps by what they give back, each once a build.
    private readonly Dictionary<string, (Run Run, bool LeftMeansFailed)> _runs = [];
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

    /// <summary>
    /// Leaves <paramref name="run"/> to the end of the build (what the targets do not end, it ends). With
    /// <paramref name="leftMeansFailed"/> (NspawnOnVSTest: a failing VSTest ends the build before the targets can stop
    /// the machines), a machine left to the end is one whose tests failed: its logs are saved and it may be kept.
    /// </summary>
    public void Hold(Run run, bool leftMeansFailed = false)
    {
        lock (_gate)
            _runs[run.RunDir] = (run, leftMeansFailed);
    }

    /// <summary>The run of that folder, or null when none was begun in this build.</summary>
    public Run? Find(string runDir)
    {
        lock (_gate)
            return _runs.GetValueOrDefault(runDir).Run;
    }

    /// <summary>The run, ended by the targets with nothing left, is no longer the end of the build's.</summary>
    public void Release(Run run)
    {
        lock (_gate)
            if (_runs.TryGetValue(run.RunDir, out var held) && held.Run == run)
                _runs.Remove(run.RunDir);
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
        List<(Run Run, bool LeftMeansFailed)> runs;
        List<Action> last;
        lock (_gate)
        {
            (runs, last) = ([.. _runs.Values], [.. _last.Values]);
            _runs.Clear();
            _last.Clear();
        }
        // Runs share nothing: they end side by side, each in its own order. The build's loggers are gone by now:
        // what the user must know goes to the console.
        var ends = await Task.WhenAll(runs.Select(r => r.Run.EndAsync(r.LeftMeansFailed, m => Console.Error.WriteLine("Nspawn.Build: " + m),
            w => Console.Error.WriteLine($"Nspawn.Build: warning {w.Code}: {w.Message}"))));
        var failures = ends.SelectMany(e => e.Failures).ToList();
        failures.AddRange(await OrderedEnd.RunAsync([.. last.Select(step => (Func<Task>)(() => Task.Run(step)))]));
        return failures;
    }
}
