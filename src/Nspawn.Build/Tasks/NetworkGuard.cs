using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// A backstop, like <see cref="MachineGuard"/>: the private network is registered with the build engine for the
/// build's lifetime and removed when the build ends, however it ends; StopEphemeral unregisters it once removed.
/// </summary>
internal sealed class NetworkGuard(PrivateNetwork network) : IDisposable
{
    private static string Key(PrivateNetwork n) => "Nspawn.Build.Network:" + n.Bridge;

    public static void Register(IBuildEngine4 engine, PrivateNetwork n) =>
        engine.RegisterTaskObject(Key(n), new NetworkGuard(n), RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);

    public static void Unregister(IBuildEngine4 engine, PrivateNetwork n) =>
        engine.UnregisterTaskObject(Key(n), RegisteredTaskObjectLifetime.Build);

    public void Dispose()
    {
        try
        {
            NetworkRegistry.RemoveAsync(network, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is NspawnException or IOException)
        {
            // Nothing left to report to at the end of the build; the next run's reaper gets what remains.
        }
    }
}
