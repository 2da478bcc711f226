namespace Nspawn.Testing.Agent;

/// <summary>
/// The native agent. Its arguments after --managed start the managed agent (the runtime, its settings, the DLL),
/// which it starts only for InvokeAsync.
/// </summary>
internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        // The unit's check that this guest loads the agent at all (its glibc, its architecture).
        if (args is ["--probe"])
            return 0;
        var at = Array.IndexOf(args, "--managed");
        var managed = at >= 0 ? args[(at + 1)..] : [];
        ExecHandler.DirectStart = DirectCommand.TryStart;
        var proxy = new InvokeProxy(managed, Path.Combine(Listener.SocketDir, "invoke.sock"));
        await Listener.RunAsync(Listener.DefaultSocket, proxy.ServeAsync, warm: true, acceptThreads: 4);
        return 0;
    }
}
