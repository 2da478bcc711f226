using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// A backstop: each started machine is registered with the build engine for the build's lifetime, and the
/// engine disposes it when the build ends, however it ends; StopEphemeral unregisters machines it stopped.
/// With <paramref name="leftMeansFailed"/> (NspawnOnVSTest: a failing VSTest ends the build before the
/// targets can stop the machines), a machine left to it is one whose tests failed: its logs are saved and
/// it may be kept, as NspawnStopMachines does after failed tests.
/// </summary>
internal sealed class MachineGuard(Machine machine, string runDir, bool leftMeansFailed, string projectFile) : IDisposable
{
    private static string Key(Machine m) => "Nspawn.Build.Machine:" + m.Name;

    public static void Register(IBuildEngine4 engine, Machine m, string runDir, bool leftMeansFailed, string projectFile) =>
        engine.RegisterTaskObject(Key(m), new MachineGuard(m, runDir, leftMeansFailed, projectFile), RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);

    public static void Unregister(IBuildEngine4 engine, Machine m) =>
        engine.UnregisterTaskObject(Key(m), RegisteredTaskObjectLifetime.Build);

    public void Dispose()
    {
        try
        {
            var end = MachineEnd.FinishAsync(machine, leftMeansFailed, CancellationToken.None).GetAwaiter().GetResult();
            var trx = end.Logs is { } logs ? TrxAttachments.Add([logs]) : [];
            // The build's loggers are gone by now: what the user must know goes to the console.
            if (end.Logs is not null)
                Console.Error.WriteLine($"Nspawn.Build: saved the logs of {end.Logs}{(trx.Count == 0 ? "" : $", listed in {string.Join(", ", trx)}")}.");
            if (end.Kept)
                Console.Error.WriteLine("Nspawn.Build: " + KeptMachines.Describe(machine, projectFile));
            RunFiles.Remove(runDir);
        }
        catch (Exception e) when (e is NspawnException or IOException or UnauthorizedAccessException)
        {
            // Nothing left to report to at the end of the build; the next run's reaper gets what remains.
        }
    }
}
