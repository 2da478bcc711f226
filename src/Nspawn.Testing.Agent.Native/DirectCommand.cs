using System.ComponentModel;
using System.IO.Pipes;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Testing.Agent;

/// <summary>
/// A command started by the native agent itself (spawn.c): created in its cgroup, as its user, and exec'd, with no
/// shell or setpriv between. Where the kernel refuses that (no clone3 or CLONE_INTO_CGROUP), <see cref="TryStart"/>
/// says null and the shell's way (<see cref="ShellCommand"/>) starts it.
/// </summary>
internal sealed unsafe class DirectCommand : IStartedCommand
{
    private const string Library = "nspawn-spawn";
    private const int OpenDirectory = 0x10000;
    private const int CloseOnExec = 0x80000;
    private const int StepExec = 4;
    private const int NotFound = 2;
    private const int InputOutputError = 5;
    private const int KillSignal = 9;
    private static volatile bool _refused;
    private readonly AnonymousPipeClientStream _input;
    private readonly AnonymousPipeClientStream _output;
    private readonly AnonymousPipeClientStream _error;
    private readonly Task<int> _exit;
    /// <summary>The first process's pidfd: a SafeHandle, so that a kill in flight keeps it open while the reaper closes it.</summary>
    private readonly SafeFileHandle _pidfd;

    private DirectCommand(int pid, SafeFileHandle pidfd, int input, int output, int error)
    {
        _input = new AnonymousPipeClientStream(PipeDirection.Out, new SafePipeHandle(input, ownsHandle: true));
        _output = new AnonymousPipeClientStream(PipeDirection.In, new SafePipeHandle(output, ownsHandle: true));
        _error = new AnonymousPipeClientStream(PipeDirection.In, new SafePipeHandle(error, ownsHandle: true));
        _pidfd = pidfd;
        _exit = ChildReaper.ExitAsync(pid);
        // Reaped, it has nothing left to kill: its pidfd goes at once rather than with the reply.
        _exit.ContinueWith(static (_, handle) => ((SafeFileHandle)handle!).Dispose(), pidfd, CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    public Stream Input => _input;

    public Stream Output => _output;

    public Stream Error => _error;

    /// <summary>
    /// Starts <paramref name="command"/> in <paramref name="cgroup"/>; null where this kernel cannot (then never again).
    /// Win32Exception where the command's folder, streams or user cannot be set up (the agent's exit code 200), and
    /// CommandNotRunException where its file cannot run (127, 126), as the shell's way reports them.
    /// </summary>
    public static IStartedCommand? TryStart(CommandStart command, CommandCgroup cgroup)
    {
        if (_refused || !CommandCgroup.Unified)
            return null;
        var pipes = stackalloc int[6] { -1, -1, -1, -1, -1, -1 };
        var strings = new List<nint>();
        var cgroupFd = -1;
        var pidfd = -1;
        try
        {
            for (var i = 0; i < 3; i++)
                if (Pipe2(pipes + 2 * i, CloseOnExec) != 0)
                    throw new Win32Exception(Marshal.GetLastPInvokeError());
            cgroupFd = Open(cgroup.Dir, OpenDirectory | CloseOnExec);
            if (cgroupFd < 0)
            {
                // A cgroup we cannot open (removed by a command of root's, no fds left) would fail the shell's way too: it runs without.
                cgroup.Drop();
                return null;
            }
            var argv = Strings(command.Command, strings, leading: 0);
            var shArgv = Strings(command.Command.Skip(1).ToList(), strings, leading: 2);
            var envp = Strings(command.Environment.Select(e => $"{e.Key}={e.Value}").ToList(), strings, leading: 0);
            var groups = command.Account?.Groups() ?? [];
            var groupIds = stackalloc uint[Math.Max(1, groups.Count)];
            for (var i = 0; i < groups.Count; i++)
                groupIds[i] = groups[i];
            var request = new SpawnRequest
            {
                Argv = argv, Envp = envp, ShArgv = shArgv,
                Path = command.Environment.TryGetValue("PATH", out var path) ? Utf8(path, strings) : 0,
                Cwd = Utf8(command.WorkingDirectory, strings),
                CgroupFd = cgroupFd,
                SetIds = command.Account is null ? 0 : 1, Uid = command.Account?.Uid ?? 0, Gid = command.Account?.Gid ?? 0,
                Groups = (nint)groupIds, GroupCount = groups.Count,
                // The child's ends: the read end of stdin's pipe, the write ends of the others.
                StdinFd = pipes[0], StdoutFd = pipes[3], StderrFd = pipes[5],
            };
            int step;
            var result = Spawn(&request, &step, &pidfd);
            // A pid is > 0: 0 taken for one would have the reaper's waitpid(0) take any child's status.
            if (result <= 0)
            {
                var errno = result < 0 ? -result : InputOutputError;
                if (step == 0)
                {
                    // No process. ENOSYS, E2BIG, EINVAL: this kernel has no clone3 or no CLONE_INTO_CGROUP, for good.
                    _refused |= errno is 38 or 7 or 22;
                    return null;
                }
                throw step == StepExec ? new CommandNotRunException(Marshal.GetPInvokeErrorMessage(errno), errno == NotFound ? 127 : 126)
                    : new Win32Exception(errno);
            }
            var started = new DirectCommand(result, new SafeFileHandle(pidfd, ownsHandle: true), pipes[1], pipes[2], pipes[4]);
            (pipes[1], pipes[2], pipes[4], pidfd) = (-1, -1, -1, -1);
            return started;
        }
        finally
        {
            for (var i = 0; i < 6; i++)
                if (pipes[i] >= 0)
                    Close(pipes[i]);
            if (cgroupFd >= 0)
                Close(cgroupFd);
            if (pidfd >= 0)
                Close(pidfd);
            foreach (var s in strings)
                Marshal.FreeHGlobal(s);
        }
    }

    public Task<int> ExitAsync() => _exit;

    public void CloseInput() => _input.Dispose();

    /// <summary>
    /// SIGKILLs the first process, by its pidfd (never a stranger that got its pid once it was reaped): its cgroup holds
    /// the rest, which the caller kills, but the caller's wait for this exit must not depend on that kill working.
    /// </summary>
    public void KillTree()
    {
        try
        {
            Kill(_pidfd, KillSignal);
        }
        catch (ObjectDisposedException)
        {
            // Reaped already (its pidfd closed): nothing to kill.
        }
    }

    public void Dispose()
    {
        _input.Dispose();
        _output.Dispose();
        _error.Dispose();
        _pidfd.Dispose();
    }

    /// <summary>A NULL-terminated array of UTF-8 strings, after <paramref name="leading"/> empty slots.</summary>
    private static nint Strings(IReadOnlyList<string> values, List<nint> allocated, int leading)
    {
        var array = Marshal.AllocHGlobal((leading + values.Count + 1) * sizeof(nint));
        allocated.Add(array);
        var slots = (nint*)array;
        for (var i = 0; i < leading; i++)
            slots[i] = 0;
        for (var i = 0; i < values.Count; i++)
            slots[leading + i] = Utf8(values[i], allocated);
        slots[leading + values.Count] = 0;
        return array;
    }

    private static nint Utf8(string value, List<nint> allocated)
    {
        if (value.Contains('\0'))
            throw new ArgumentException("An argument, a variable or the folder holds a NUL character.");
        var bytes = Encoding.UTF8.GetBytes(value);
        var native = Marshal.AllocHGlobal(bytes.Length + 1);
        allocated.Add(native);
        Marshal.Copy(bytes, 0, native, bytes.Length);
        ((byte*)native)[bytes.Length] = 0;
        return native;
    }

    /// <summary>spawn.c's struct nspawn_spawn_request.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct SpawnRequest
    {
        public nint Argv, Envp, Path, Cwd, ShArgv;
        public int CgroupFd, SetIds;
        public uint Uid, Gid;
        public nint Groups;
        public int GroupCount, StdinFd, StdoutFd, StderrFd;
        public int FailedStep, FailedError;
    }

    [DllImport(Library, EntryPoint = "nspawn_spawn")]
    private static extern int Spawn(SpawnRequest* request, int* step, int* pidfd);

    /// <summary>pidfd_send_signal by its system call (glibc's wrapper is 2.36's: a guest's older glibc would not load the agent).</summary>
    [DllImport(Library, EntryPoint = "nspawn_kill")]
    private static extern int Kill(SafeFileHandle pidfd, int signal);

    [DllImport("libc", EntryPoint = "pipe2", SetLastError = true)]
    private static extern int Pipe2(int* fds, int flags);

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int Close(int fd);
}
