using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// Keeps a run's warm pool for the build's lifetime: StopEphemeral takes it back and stops it with the machines;
/// if the build ends first (a failed VSTest under NspawnOnTest, Ctrl+C), the engine disposes it, which stops it.
/// </summary>
internal sealed class PoolGuard(MachinePool pool) : IDisposable
{
    private MachinePool Pool => pool;

    private static string Key(string runDir) => "Nspawn.Build.Pool:" + runDir;

    public static void Register(IBuildEngine4 engine, string runDir, MachinePool pool) =>
        engine.RegisterTaskObject(Key(runDir), new PoolGuard(pool), RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);

    /// <summary>The run's pool, no longer left to the end of the build; null when it has none.</summary>
    public static MachinePool? Take(IBuildEngine4 engine, string runDir)
    {
        var guard = engine.GetRegisteredTaskObject(Key(runDir), RegisteredTaskObjectLifetime.Build) as PoolGuard;
        if (guard is not null)
            engine.UnregisterTaskObject(Key(runDir), RegisteredTaskObjectLifetime.Build);
        return guard?.Pool;
    }

    public void Dispose()
    {
        try
        {
            pool.StopAsync().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is NspawnException or IOException or UnauthorizedAccessException)
        {
            // Nothing left to report to at the end of the build; the next run's reaper gets what remains.
        }
    }
}
