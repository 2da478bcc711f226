using Microsoft.Build.Framework;
using Nspawn.Build.Tasks;

namespace Nspawn.Build.Tests;

/// <summary>
/// The end of a run, however the build ends: the warm pool's stop, the ordered end, the one holder the build engine
/// disposes. The pool's launcher is a fake: no root, no machine.
/// </summary>
[Trait("Category", "Unit")]
public sealed class RunEndUnitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-runend-").FullName;
    private static readonly LaunchOptions Model = new("pool", "/srv/test_chroots/bookworm");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A run's folder (RunFiles.Create's, which needs root) stands here in the test's own.</summary>
    private string RunDir(string name = "run") => Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;

    private static MachinePool Pool(int size, string runDir, FakeLauncher launcher) =>
        MachinePool.Start(Model, size, runDir, launcher.StartAsync, launcher.StopAsync);

    [Fact]
    public async Task A_pool_whose_boots_fail_once_the_run_folder_is_gone_stops_without_throwing_or_booting_again()
    {
        // As on a failed VSTest when the run's folder and network went first: the boots under way fail, the third
        // failure is told in a folder that is gone, and nothing is there to count as ready.
        var gate = new TaskCompletionSource();
        var launcher = new FakeLauncher(async (_, _) =>
        {
            await gate.Task;
            throw new NspawnException(ErrorCodes.NetworkFailed, "The private network is gone.");
        });
        var runDir = RunDir();
        var pool = Pool(3, runDir, launcher);
        await Until(() => launcher.Begun == 3);
        Directory.Delete(runDir, recursive: true);
        gate.SetResult();
        await Until(() => launcher.Running == 0);
        // Its loop gave up: from then on nothing can boot a replacement.
        await pool.Loop.WaitAsync(Patience);
        launcher.Stopping = true;
        var stopped = await pool.StopAsync();
        Assert.Empty(stopped);
        Assert.Equal(3, launcher.Begun);
        Assert.Equal(0, launcher.BegunAfterStop);
        Assert.Equal(3, pool.Problems.Count(p => p.Contains("The private network is gone.")));
    }

    [Fact]
    public async Task Three_failed_boots_in_a_row_and_the_pool_gives_up_with_NSPAWN0081()
    {
        // Boots fail, fail, succeed (which ends the row), then fail three times in a row.
        var boots = 0;
        var launcher = new FakeLauncher((_, _) =>
        {
            var boot = Interlocked.Increment(ref boots);
            return boot == 3 ? Task.CompletedTask : throw new NspawnException(ErrorCodes.BootFailed, $"boot {boot} failed");
        });
        var engine = new FakeBuildEngine();
        var runDir = RunDir();
        var pool = Pool(1, runDir, launcher);
        RunGuard.Of(engine).Hold(Run.Started([], null, runDir, pool: pool));
        await Until(() => PoolDir.ReadyCount(pool.Dir) == 1);
        Assert.Null(PoolDir.Failure(pool.Dir));
        // A test takes it: the pool boots its replacement, which fails three times.
        Assert.NotNull(PoolDir.TryClaim(pool.Dir));
        await pool.Loop.WaitAsync(Patience);
        Assert.Equal(6, launcher.Begun);
        // The tests are told (PoolClient then boots their own) ...
        Assert.Equal("boot 6 failed", PoolDir.Failure(pool.Dir));
        // ... and the build says each failure as the warning NSPAWN0081 when the pool ends.
        launcher.Stopping = true;
        Assert.True(new StopEphemeral { BuildEngine = engine, RunDir = runDir }.Execute(), string.Join('\n', engine.ErrorLines));
        Assert.Equal(["boot 1 failed", "boot 2 failed", "boot 4 failed", "boot 5 failed", "boot 6 failed"],
            engine.Warnings.Where(w => w.Code == ErrorCodes.PoolBootFailed).Select(w => w.Message![(w.Message!.LastIndexOf(": ", StringComparison.Ordinal) + 2)..]).Order());
        Assert.Equal(engine.Warnings.Count, engine.Warnings.Count(w => w.Code == ErrorCodes.PoolBootFailed));
        Assert.Equal(0, launcher.BegunAfterStop);
    }

    [Fact]
    public async Task A_stop_waits_for_the_boots_under_way_and_then_stops_every_machine_the_pool_booted()
    {
        var slow = new TaskCompletionSource();
        var boots = 0;
        // The third boot ignores the stop's cancellation: the stop must wait for it all the same.
        var launcher = new FakeLauncher(async (_, _) =>
        {
            if (Interlocked.Increment(ref boots) > 2)
                await slow.Task;
        });
        var pool = Pool(2, RunDir(), launcher);
        await Until(() => PoolDir.ReadyCount(pool.Dir) == 2);
        // A test takes one and still holds it: the pool boots a replacement.
        Assert.NotNull(PoolDir.TryClaim(pool.Dir));
        await Until(() => launcher.Begun == 3);
        launcher.Stopping = true;
        var stop = pool.StopAsync();
        Assert.False(stop.IsCompleted);
        slow.SetResult();
        var stopped = await stop.WaitAsync(Patience);
        // Ready, taken and late alike: the late one is up only after the stop began, which so waited for it.
        Assert.Equal(launcher.Started.Order(), stopped.Select(s => s.Machine.Name).Order());
        Assert.Equal(3, stopped.Count);
        Assert.Equal(0, launcher.Running);
        Assert.Equal(0, launcher.BegunAfterStop);
        Assert.Same(stop, pool.StopAsync());
    }

    [Fact]
    public async Task A_machine_handed_back_or_never_taken_is_killed_at_once()
    {
        var launcher = new FakeLauncher();
        var pool = Pool(2, RunDir(), launcher);
        await Until(() => PoolDir.ReadyCount(pool.Dir) == 2);
        // A test takes one and hands it back: the pool stops it, without the power-off's wait.
        var taken = PoolDir.TryClaim(pool.Dir);
        Assert.NotNull(taken);
        Assert.True(PoolDir.Return(pool.Dir, taken!.Name));
        await Until(() => launcher.Stopped.Count == 1);
        launcher.Stopping = true;
        await pool.StopAsync();
        Assert.True(launcher.Stopped.Count >= 2);
        Assert.All(launcher.StopTimeouts, t => Assert.Equal(TimeSpan.Zero, t));
    }

    [Fact]
    public async Task A_failed_stop_is_thrown_only_once_every_other_machine_is_stopped()
    {
        var launcher = new FakeLauncher();
        var pool = Pool(2, RunDir(), launcher);
        await Until(() => PoolDir.ReadyCount(pool.Dir) == 2);
        var failing = launcher.Started.First();
        launcher.FailStop = m => m.Name == failing;
        var e = await Assert.ThrowsAsync<NspawnException>(() => pool.StopAsync());
        Assert.Equal(ErrorCodes.StopFailed, e.Code);
        Assert.Equal(launcher.Started.Single(n => n != failing), Assert.Single(launcher.Stopped));
    }

    [Fact]
    public async Task Every_step_of_an_ordered_end_runs_even_after_one_threw()
    {
        var ran = new List<string>();
        var failures = await OrderedEnd.RunAsync(
            () => throw new IOException("first"),
            async () =>
            {
                await Task.Yield();
                ran.Add("second");
            },
            async () =>
            {
                await Task.Yield();
                throw new InvalidOperationException("third");
            },
            () =>
            {
                ran.Add("fourth");
                return Task.CompletedTask;
            });
        Assert.Equal(["second", "fourth"], ran);
        Assert.Equal(["first", "third"], failures.Select(f => f.Message));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_end_of_the_build_ends_every_run_pool_first_and_the_last_steps_after_them_in_any_order(bool reverse)
    {
        var engine = new FakeBuildEngine();
        var first = RunDir("first");
        var second = RunDir("second");
        // Something else the build registered, disposed before or after the holder as the engine chooses: it takes the first run's folder.
        engine.RegisterTaskObject("other", new Disposable(() => Directory.Delete(first, recursive: true)), RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
        var guard = RunGuard.Of(engine);
        Assert.Same(guard, RunGuard.Of(engine));
        // The first run's boots are under way at the end and ignore its cancellation (they end only once it came);
        // its machines then fail to stop.
        var failing = new FakeLauncher(async (_, cancelled) =>
        {
            var stopBegan = new TaskCompletionSource();
            using (cancelled.Register(() => stopBegan.TrySetResult()))
                await stopBegan.Task;
        }) { FailStop = _ => true };
        var fine = new FakeLauncher();
        guard.Hold(Run.Started([], null, first, pool: Pool(2, first, failing)));
        guard.Hold(Run.Started([], null, second, pool: Pool(2, second, fine)));
        var seen = new List<string>();
        guard.AtEnd("last", () => seen.Add($"stopped {fine.Stopped.Count}, booting {failing.Running}"));
        await Until(() => failing.Begun == 2 && fine.Started.Count == 2);
        (failing.Stopping, fine.Stopping) = (true, true);
        Assert.Empty(engine.EndBuild(reverse ? o => o.Reverse() : null));
        // The failing run's stop threw, yet the other run ended and the last step ran after both.
        Assert.Equal(["stopped 2, booting 0"], seen);
        Assert.Empty(failing.Stopped);
        Assert.Equal(0, failing.BegunAfterStop + fine.BegunAfterStop);
        Assert.Equal(2, failing.Started.Count);
    }

    [Fact]
    public async Task The_normal_stop_takes_the_pool_back_from_the_end_of_the_build()
    {
        var engine = new FakeBuildEngine();
        var launcher = new FakeLauncher();
        var runDir = RunDir();
        var pool = Pool(1, runDir, launcher);
        RunGuard.Of(engine).Hold(Run.Started([], null, runDir, pool: pool));
        await Until(() => PoolDir.ReadyCount(pool.Dir) == 1);
        Assert.True(new StopEphemeral { BuildEngine = engine, RunDir = runDir }.Execute(), string.Join('\n', engine.ErrorLines));
        Assert.Single(launcher.Stopped);
        Assert.Contains(engine.Messages, m => m.Message?.StartsWith("The pool of 1 booted 1 machines") == true);
        Assert.Empty(engine.EndBuild());
        Assert.Single(launcher.Stopped);
    }

    [Fact]
    public async Task A_pool_whose_stop_failed_is_stopped_again_by_the_end_of_the_build()
    {
        var engine = new FakeBuildEngine();
        var launcher = new FakeLauncher();
        var runDir = RunDir();
        var pool = Pool(2, runDir, launcher);
        RunGuard.Of(engine).Hold(Run.Started([], null, runDir, pool: pool));
        await Until(() => PoolDir.ReadyCount(pool.Dir) == 2);
        var failing = launcher.Started.First();
        launcher.FailStop = m => m.Name == failing;
        Assert.False(new StopEphemeral { BuildEngine = engine, RunDir = runDir }.Execute());
        Assert.Contains(engine.ErrorLines, l => l.Contains($"{failing} would not stop"));
        Assert.DoesNotContain(failing, launcher.Stopped);
        // The machine stops now: the end of the build tries the pool again, and stops only what the first stop left.
        launcher.FailStop = _ => false;
        Assert.Empty(engine.EndBuild());
        Assert.Equal(launcher.Started.Order(), launcher.Stopped.Order());
    }

    [Fact]
    public async Task The_holder_ends_each_run_once_and_forgets_it()
    {
        var engine = new FakeBuildEngine();
        var launcher = new FakeLauncher();
        var runDir = RunDir();
        var guard = RunGuard.Of(engine);
        guard.Hold(Run.Started([], null, runDir, pool: Pool(2, runDir, launcher)));
        await Until(() => launcher.Started.Count == 2);
        launcher.Stopping = true;
        Assert.Empty(engine.EndBuild());
        Assert.Equal(launcher.Started.Order(), launcher.Stopped.Order());
        Assert.Null(guard.Find(runDir));
        // Ended and forgotten: another end stops nothing again.
        Assert.Empty(await guard.EndAsync());
        Assert.Equal(2, launcher.Stopped.Count);
        Assert.Equal(0, launcher.BegunAfterStop);
        // The next build of this MSBuild process gets a holder of its own.
        Assert.NotSame(guard, RunGuard.Of(engine));
    }

    [Fact]
    public async Task The_end_returns_every_failure_in_order_and_its_disposal_never_throws()
    {
        var engine = new FakeBuildEngine();
        var guard = RunGuard.Of(engine);
        var failing = new FakeLauncher { FailStop = _ => true };
        var runDir = RunDir();
        guard.Hold(Run.Started([], null, runDir, pool: Pool(1, runDir, failing)));
        await Until(() => failing.Started.Count == 1);
        failing.Stopping = true;
        var ran = new List<string>();
        guard.AtEnd("throws", () => throw new IOException("a last step failed"));
        guard.AtEnd("after", () => ran.Add("after"));
        // Once for each key: the second step under a key is not added.
        guard.AtEnd("after", () => ran.Add("again"));
        var failures = await guard.EndAsync();
        Assert.Equal(["after"], ran);
        Assert.Collection(failures,
            f => Assert.Equal(ErrorCodes.StopFailed, Assert.IsType<NspawnException>(f).Code),
            f => Assert.Equal("a last step failed", Assert.IsType<IOException>(f).Message));

        // Through the engine, the same failures are only reported (on the console): the holder's disposal throws nothing.
        var second = RunDir("second");
        guard.Hold(Run.Started([], null, second, pool: Pool(1, second, failing)));
        await Until(() => failing.Started.Count == 2);
        guard.AtEnd("throws", () => throw new IOException("a last step failed"));
        Assert.Empty(engine.EndBuild());
        Assert.Empty(failing.Stopped);
    }

    [Fact]
    public void The_fake_engine_ends_a_build_as_MSBuild_does()
    {
        var engine = new FakeBuildEngine();
        var disposed = new List<string>();
        engine.RegisterTaskObject("throws", new Disposable(() => throw new InvalidOperationException("a disposal failed")), RegisteredTaskObjectLifetime.Build, false);
        engine.RegisterTaskObject("build", new Disposable(() => disposed.Add("build")), RegisteredTaskObjectLifetime.Build, false);
        // The first object under a key stays.
        engine.RegisterTaskObject("build", new Disposable(() => disposed.Add("second under the key")), RegisteredTaskObjectLifetime.Build, false);
        engine.RegisterTaskObject("domain", new Disposable(() => disposed.Add("domain")), RegisteredTaskObjectLifetime.AppDomain, false);
        engine.RegisterTaskObject("async", new AsyncOnly(() => disposed.Add("async")), RegisteredTaskObjectLifetime.Build, false);
        var thrown = engine.EndBuild();
        Assert.Equal("a disposal failed", Assert.Single(thrown).Message);
        Assert.Equal(["build"], disposed);
        Assert.Null(engine.GetRegisteredTaskObject("build", RegisteredTaskObjectLifetime.Build));
        Assert.NotNull(engine.GetRegisteredTaskObject("domain", RegisteredTaskObjectLifetime.AppDomain));
    }

    /// <summary>Far past what the fakes need: only turns a hang into a failure.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private static async Task Until(Func<bool> condition) =>
        Assert.True(await Shell.WaitUntilAsync(condition, Patience), "The fake pool never got there.");

    private sealed class Disposable(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
    }

    /// <summary>Only IAsyncDisposable: MSBuild does not dispose it.</summary>
    private sealed class AsyncOnly(Action dispose) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            dispose();
            return ValueTask.CompletedTask;
        }
    }
}
