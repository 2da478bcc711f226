using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// Keeps a boot that began before Build for the build's lifetime: NspawnStartMachines takes it back and waits for
/// it; if the build ends first (a compile error, Ctrl+C), the engine disposes it, which takes down what it started.
/// </summary>
internal sealed class BootGuard(BackgroundStart start) : IDisposable
{
    private BackgroundStart Start => start;

    /// <summary>Registers the boot and returns the key that StartEphemeral's Pending takes.</summary>
    public static string Register(IBuildEngine4 engine, BackgroundStart start)
    {
        var key = "Nspawn.Build.Boot:" + start.RunDir;
        engine.RegisterTaskObject(key, new BootGuard(start), RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
        return key;
    }

    /// <summary>The boot, no longer left to the end of the build; null when the key names none.</summary>
    public static BackgroundStart? Take(IBuildEngine4 engine, string key)
    {
        var guard = engine.GetRegisteredTaskObject(key, RegisteredTaskObjectLifetime.Build) as BootGuard;
        if (guard is not null)
            engine.UnregisterTaskObject(key, RegisteredTaskObjectLifetime.Build);
        return guard?.Start;
    }

    public void Dispose()
    {
        try
        {
            start.AbandonAsync().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is NspawnException or IOException or UnauthorizedAccessException or OperationCanceledException)
        {
            // Nothing left to report to at the end of the build; the next run's reaper gets what remains.
        }
    }
}
