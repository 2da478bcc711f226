using CliWrap;

namespace Nspawn.Build;

/// <summary>
/// A child process in cgroups of its own (or in a transient unit where systemd runs the host), so that a
/// stop reaches everything it started, orphans included. Its output lines go to a callback and its last
/// lines are kept for an error message.
/// </summary>
internal sealed class ScopedChild
{
    // Closes every descriptor but 0-2 that our process was given without close-on-exec (a CI step's pipe, a caller's
    // lock): a machine that outlives the build (NspawnUp) would hold them open. Bash: dash closes only 0-9.
    private const string CloseInherited = "for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ \"$fd\" -gt 2 ] && exec {fd}>&-; done; ";

    // Enters each cgroup given before "--", then becomes the command after it: a fixed script, arguments stay a list.
    private const string EnterCgroupsAndExec = CloseInherited + "while [ \"$1\" != -- ]; do echo $$ > \"$1\" || true; shift; done; shift; exec \"$@\"";

    // The same, with the command's output appended to a file given first: it then needs no draining, and outlives us.
    private const string EnterCgroupsAndExecToFile = CloseInherited + "out=$1; shift; while [ \"$1\" != -- ]; do echo $$ > \"$1\" || true; shift; done; shift; exec \"$@\" >>\"$out\" 2>&1";

    private ScopedChild(CommandTask<CommandResult> task, CgroupScope scope, LineTail tail)
    {
        Task = task;
        Scope = scope;
        Tail = tail;
    }

    public CommandTask<CommandResult> Task { get; }
    public CgroupScope Scope { get; }
    /// <summary>The last lines of its standard output and error.</summary>
    public LineTail Tail { get; }
    public int ProcessId => Task.ProcessId;

    /// <summary>
    /// Starts <paramref name="argv"/> in <paramref name="scope"/> (new cgroups, see <see cref="CgroupScope.Create"/>).
    /// <paramref name="graceful"/> sends SIGINT, <paramref name="forceful"/> SIGKILL; the caller kills the scope when done with it.
    /// With <paramref name="outputFile"/> (an existing file of ours) the command's output goes there instead, appended.
    /// </summary>
    public static ScopedChild Start(CgroupScope scope, IReadOnlyList<string> argv, Action<string>? onLine, int tailLines,
        IReadOnlyDictionary<string, string?>? environment = null, CancellationToken forceful = default, CancellationToken graceful = default,
        string? outputFile = null)
    {
        var tail = new LineTail(tailLines);
        void OnLine(string line)
        {
            tail.Add(line);
            onLine?.Invoke(line);
        }
        var task = Cli.Wrap(ToolLocator.Require(Tool.Bash))
            .WithArguments(outputFile is null
                ? ["-c", EnterCgroupsAndExec, "bash", .. scope.ProcsFiles, "--", .. argv]
                : ["-c", EnterCgroupsAndExecToFile, "bash", outputFile, .. scope.ProcsFiles, "--", .. argv])
            .WithEnvironmentVariables(environment ?? new Dictionary<string, string?>())
            // Always drained: nspawn dies when its output has nowhere to go.
            .WithStandardOutputPipe(PipeTarget.ToDelegate(OnLine))
            .WithStandardErrorPipe(PipeTarget.ToDelegate(OnLine))
            .WithValidation(CommandResultValidation.None)
            .ExecuteAsync(forceful, graceful);
        return new ScopedChild(task, scope, tail);
    }

    /// <summary>
    /// Runs <paramref name="argv"/> to its end. On cancel, or past <paramref name="limit"/>, it gets SIGINT and
    /// <paramref name="grace"/> to finish (debootstrap unmounts what it mounted), then is killed; whatever it
    /// started is killed in the end. A limit that ran out is NSPAWN0024, naming <paramref name="what"/>.
    /// With <paramref name="inSystemdUnit"/> it runs as a transient unit of the host's systemd instead.
    /// </summary>
    public static async Task<(int ExitCode, LineTail Tail)> RunAsync(string name, IReadOnlyList<string> argv, Action<string> onLine, string what,
        TimeSpan grace, TimeSpan limit, bool inSystemdUnit, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(limit);
        using var forceful = new CancellationTokenSource();
        using var escalate = stop.Token.Register(() => forceful.CancelAfter(grace));
        ScopedChild child;
        if (inSystemdUnit)
        {
            var tail = new LineTail(20);
            void OnLine(string line)
            {
                tail.Add(line);
                onLine(line);
            }
            child = new ScopedChild(Cli.Wrap(ToolLocator.Require(Tool.SystemdRun))
                .WithArguments(["--pipe", "--wait", "--quiet", "--collect", "--property=Delegate=yes", $"--unit={name}", "--", .. argv])
                .WithStandardOutputPipe(PipeTarget.ToDelegate(OnLine)).WithStandardErrorPipe(PipeTarget.ToDelegate(OnLine))
                .WithValidation(CommandResultValidation.None).ExecuteAsync(forceful.Token, stop.Token), new CgroupScope([]), tail);
        }
        else
            child = Start(CgroupScope.Create(name), argv, onLine, 20, null, forceful.Token, stop.Token);
        try
        {
            return ((await child.Task).ExitCode, child.Tail);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new NspawnException(ErrorCodes.CommandFailed, $"{what} did not finish within {limit.TotalMinutes:0.#} min and was stopped.");
        }
        finally
        {
            await child.Scope.KillAllAsync(TimeSpan.FromSeconds(5));
            child.Scope.Remove();
        }
    }
}
