using System.Runtime.InteropServices;

namespace Nspawn.Testing.Agent;

/// <summary>
/// Reaps the commands <see cref="DirectCommand"/> starts: each SIGCHLD, the runtime calls this (as it reaps its own
/// Process children, never ours), which reaps those of ours that ended. No thread per command waits.
/// </summary>
internal static class ChildReaper
{
    private const int Running = -1;
    private const int NotOurs = -2;
    private static readonly Dictionary<int, TaskCompletionSource<int>> Waiting = [];
    private static PosixSignalRegistration? _registration;

    /// <summary>The exit code of our child <paramref name="pid"/> (128 + the signal that ended it), once it ended.</summary>
    public static Task<int> ExitAsync(int pid)
    {
        // Asynchronous continuations: the command's handler never goes on inside the signal's callback, nor holds up the others' reaping.
        var exit = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
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
        List<(int Pid, TaskCompletionSource<int> Exit, int Code)> ended = [];
        lock (Waiting)
        {
            foreach (var (pid, exit) in Waiting)
                if (TryWait(pid) is var code and not Running)
                    ended.Add((pid, exit, code));
            foreach (var (pid, _, _) in ended)
                Waiting.Remove(pid);
        }
        // Outside the lock: the waiting command goes on from here.
        foreach (var (pid, exit, code) in ended)
        {
            if (code == NotOurs)
            {
                // Someone else's waitpid took its status (a reap of all children): the command's exit code is lost, and
                // the host gets 255. Said in the journal (the unit's stderr), where it would otherwise look like the command's own.
                Console.Error.WriteLine($"nspawn-agent: the exit status of command process {pid} was taken by another wait; reporting 255.");
            }
            exit.TrySetResult(code < 0 ? 255 : code);
        }
    }

    [DllImport("nspawn-spawn", EntryPoint = "nspawn_try_wait")]
    private static extern int TryWait(int pid);
}
