namespace Nspawn.Testing.Agent;

/// <summary>
/// The managed agent, on the host's .NET runtime: all of the agent where the native one cannot run (another
/// architecture, an older glibc), and otherwise the host of InvokeAsync alone, which the native agent starts on the
/// first call and passes those calls to (--socket: where it listens then).
/// </summary>
internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        var at = Array.IndexOf(args, "--socket");
        var path = at >= 0 && at + 1 < args.Length ? args[at + 1] : Listener.DefaultSocket;
        // As the InvokeAsync host (--socket), it runs no commands.
        await Listener.RunAsync(path, async (_, request, _) => await InvokeHandler.RunAsync(request), warm: at < 0);
        return 0;
    }
}
