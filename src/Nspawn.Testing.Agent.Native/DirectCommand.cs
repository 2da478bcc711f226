using System.ComponentModel;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Nspawn.Build.Agent;

namespace Nspawn.Testing.Agent;

/// <summary>
/// A command started by the native agent itself (spawn.c): created in its cgroup, as its user, and exec'd, with no
/// shell or setpriv between. Where the kernel refuses that (no clone3 or CLONE_INTO_CGROUP), <see cref="TryStart"/>
/// says null and the shell's way (<see cref="ShellCommand"/>) starts it.
/// </summary>
internal sealed unsafe class DirectCommand : IServedCommand
{
    private const string Library = "nspawn-spawn";
    private const int OpenDirectory = 0x10000;
    private const int CloseOnExec = 0x80000;
    private const int StepExec = 4;
    private const int NotFound = 2;
    private const int InputOutputError = 5;
    private const int KillSignal = 9;
    private static volatile bool _refused;

    private DirectCommand(int pid, SafeFileHandle pidfd, int input, int output, int error)
    {
        (Pid, Pidfd) = (pid, pidfd);
        (InputPipe, OutputPipe, ErrorPipe) = (new SafePipeHandle(input, ownsHandle: true), new SafePipeHandle(output, ownsHandle: true),
            new SafePipeHandle(error, ownsHandle: true));
    }

    public int Pid { get; }

    /// <summary>The first process's pidfd, which polls readable once it ended and names it alone (never a stranger given its pid).</summary>
    public SafeFileHandle Pidfd { get; }

    /// <summary>The write end of the command's standard input, and the read ends of its output and its errors.</summary>
    public SafePipeHandle InputPipe { get; }

    public SafePipeHandle OutputPipe { get; }

    public SafePipeHandle ErrorPipe { get; }

    /// <summary>
    /// Starts <paramref name="command"/> in <paramref name="cgroup"/>; null where this kernel cannot (then never again).
    /// Win32Exception where the command's folder, streams or user cannot be set up (the agent's exit code 200), and
    /// CommandNotRunException where its file cannot run (127, 126), as the shell's way reports them.
    /// </summary>
    public static IServedCommand? TryStart(CommandStart command, CommandCgroup cgroup)
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

    /// <summary>
    /// Reaps the first process once it ended (its pidfd polls readable): its exit code (128 + the signal that ended it),
    /// or null while it runs. It is a child without SIGCHLD (spawn.c): the runtime's own wait for its children never takes it.
    /// </summary>
    public int? TryReap()
    {
        var code = TryWait(Pid);
        if (code == -2)
            Console.Error.WriteLine($"nspawn-agent: the exit status of command process {Pid} was taken by another wait; reporting 255.");
        return code == -1 ? null : code < 0 ? 255 : code;
    }

    /// <summary>Reaps the first process whenever it ends, on a thread of its own (after a failure that left it running).</summary>
    public void ReapWhenEnded() =>
        new Thread(() =>
        {
            while (TryReap() is null)
                Thread.Sleep(100);
        }, 64 * 1024) { IsBackground = true, Name = "nspawn-reap" }.Start();

    /// <summary>Ends its input: it reads end of file.</summary>
    public void CloseInput() => InputPipe.Dispose();

    public Task<AgentReply> ServeAsync(Connection? connection, AgentRequest request, CommandCgroup? cgroup) =>
        PolledExec.RunAsync(this, connection, request, cgroup);

    /// <summary>
    /// SIGKILLs the first process, by its pidfd (never a stranger that got its pid once it was reaped): its cgroup holds
    /// the rest, which the caller kills, but the caller's wait for this exit must not depend on that kill working.
    /// </summary>
    public void Kill()
    {
        try
        {
            Kill(Pidfd, KillSignal);
        }
        catch (ObjectDisposedException)
        {
            // Disposed already: nothing to kill.
        }
    }

    public void Dispose()
    {
        InputPipe.Dispose();
        OutputPipe.Dispose();
        ErrorPipe.Dispose();
        Pidfd.Dispose();
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

    /// <summary>spawn.c's waitpid of a child without SIGCHLD: its code, -1 while it runs, -2 where it is not ours.</summary>
    [DllImport(Library, EntryPoint = "nspawn_try_wait")]
    private static extern int TryWait(int pid);

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
