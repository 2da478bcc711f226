using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// A backstop: each started machine is registered with the build engine for the build's lifetime, and the
/// engine disposes it when the build ends, however it ends; StopEphemeral unregisters machines it stopped.
/// </summary>
internal sealed class MachineGuard(Machine machine, string runDir) : IDisposable
{
    private static string Key(Machine m) => "Nspawn.Build.Machine:" + m.Name;

    public static void Register(IBuildEngine4 engine, Machine m, string runDir) =>
        engine.RegisterTaskObject(Key(m), new MachineGuard(m, runDir), RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);

    public static void Unregister(IBuildEngine4 engine, Machine m) =>
        engine.UnregisterTaskObject(Key(m), RegisteredTaskObjectLifetime.Build);

    public void Dispose()
    {
        try
        {
            MachineLauncher.StopAsync(machine, CancellationToken.None).GetAwaiter().GetResult();
            RunFiles.Remove(runDir);
        }
        catch (Exception e) when (e is NspawnException or IOException)
        {
            // Nothing left to report to at the end of the build; the next run's reaper gets what remains.
        }
    }
}
