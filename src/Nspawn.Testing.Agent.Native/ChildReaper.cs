using System.Runtime.InteropServices;

namespace Nspawn.Testing.Agent;

/// <summary>
/// Reaps the commands <see cref="DirectCommand"/> starts: each SIGCHLD, the runtime calls this (as it reaps its own
/// Process children, never ours), which reaps those of ours that ended. No thread per command waits.
/// </summary>
internal static class ChildReaper
{
    private const int Running = -1;
    private static readonly Dictionary<int, TaskCompletionSource<int>> Waiting = [];
    private static PosixSignalRegistration? _registration;

    /// <summary>The exit code of our child <paramref name="pid"/> (128 + the signal that ended it), once it ended.</summary>
    public static Task<int> ExitAsync(int pid)
    {
        var exit = new TaskCompletionSource<int>();
        lock (Waiting)
        {
            _registration ??= PosixSignalRegistration.Create(PosixSignal.SIGCHLD, _ => ReapEnded());
            Waiting[pid] = exit;
        }
        // It may have ended before it was listed.
        ReapEnded();
        return exit.Task;
    }

    private static void ReapEnded()
    {
        List<(TaskCompletionSource<int> Exit, int Code)> ended = [];
        lock (Waiting)
        {
            foreach (var (pid, exit) in Waiting)
                if (TryWait(pid) is var code and not Running)
                    ended.Add((exit, code < 0 ? 255 : code));
            foreach (var (exit, _) in ended)
                Waiting.Remove(Waiting.First(w => w.Value == exit).Key);
        }
        // Outside the lock: the waiting command goes on from here.
        foreach (var (exit, code) in ended)
            exit.TrySetResult(code);
    }

    [DllImport("nspawn-spawn", EntryPoint = "nspawn_try_wait")]
    private static extern int TryWait(int pid);
}
