using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Nspawn.Build.Agent;

namespace Nspawn.Testing.Agent;

/// <summary>
/// Serves a command of the native agent's own start on one thread, with poll(2) over its output, its input, its pidfd
/// and the host's connection. ExecHandler's tasks wake three or four of the runtime's threads per command (each pipe's
/// end, SIGCHLD's, the reply), which on 2 cores took about 0.2 ms; this wakes one. The contract is ExecHandler's: output
/// frames as they come; the host's input, its end and Kill; a kill when the host goes away or 5 s after the time limit;
/// the first process's end awaited 30 s at most after a kill; what it left in its cgroup killed; its output drained 5 s
/// at most after that. It runs on the thread that took the call for its first <see cref="InlineMilliseconds"/>, then on
/// a thread of its own, so that long commands hold none of the runtime's.
/// </summary>
internal sealed unsafe class PolledExec
{
    private const long InlineMilliseconds = 20;
    private const long DrainMilliseconds = 5000;
    /// <summary>How long a frame the host began may take to arrive, and a full connection to take a frame.</summary>
    private const int HostMilliseconds = 60_000;
    private const int Chunk = 64 * 1024;
    private const int Header = 5;
    private const short PollIn = 0x1;
    private const short PollOut = 0x4;
    private const int DontWait = 0x40;
    private const int NoSignal = 0x4000;
    private const int Interrupted = 4;
    private const int WouldBlock = 11;
    private const int SetStatusFlags = 4;
    private const int NonBlock = 0x800;
    private const int ShutdownBoth = 2;

    private readonly DirectCommand _process;
    private readonly CommandCgroup? _cgroup;
    private readonly int _host;
    private long _backstopAt;
    /// <summary>A frame's header and up to <see cref="Chunk"/> bytes of output read straight after it: one send per chunk, no copy.</summary>
    private byte[] _frame = ArrayPool<byte>.Shared.Rent(Header + Chunk);
    private bool _outputOpen = true;
    private bool _errorOpen = true;
    private bool _hostOpen;
    private bool _sending;
    private bool _inputOpen;
    private bool _closeInputWhenWritten;
    private bool _killed;
    private long _killGraceAt = long.MaxValue;
    private long _drainAt = long.MaxValue;
    private int? _exitCode;
    private byte[]? _pending;
    private int _pendingAt;

    private PolledExec(DirectCommand process, Connection? connection, AgentRequest request, CommandCgroup? cgroup)
    {
        (_process, _cgroup) = (process, cgroup);
        // No connection: a warm-up, whose output goes nowhere.
        _host = connection is null ? -1 : (int)connection.Stream.Socket.Handle;
        _hostOpen = _sending = connection is not null;
        _backstopAt = request.TimeoutSeconds is { } t ? Environment.TickCount64 + (long)Math.Min((t + 5) * 1000, long.MaxValue / 4) : long.MaxValue;
        _inputOpen = request.HasStdin;
    }

    public static Task<AgentReply> RunAsync(DirectCommand process, Connection? connection, AgentRequest request, CommandCgroup? cgroup)
    {
        var exec = new PolledExec(process, connection, request, cgroup);
        bool done;
        try
        {
            exec.Prepare();
            done = exec.RunUntil(Environment.TickCount64 + InlineMilliseconds);
        }
        catch
        {
            exec.Abandon();
            exec.Release();
            throw;
        }
        if (done)
        {
            exec.Release();
            return Task.FromResult(exec.Reply());
        }
        var reply = new TaskCompletionSource<AgentReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            new Thread(() =>
            {
                try
                {
                    exec.RunUntil(long.MaxValue);
                    reply.SetResult(exec.Reply());
                }
                catch (Exception e)
                {
                    exec.Abandon();
                    reply.SetException(e);
                }
                finally
                {
                    exec.Release();
                }
            }, 256 * 1024) { IsBackground = true, Name = "nspawn-exec" }.Start();
        }
        catch
        {
            // No thread (the unit's TasksMax reached): the command goes, as on any failure.
            exec.Abandon();
            exec.Release();
            throw;
        }
        return reply.Task;
    }

    /// <summary>Its input, if it has one, written without blocking: a command that reads none must not stop its output's pumping.</summary>
    private void Prepare()
    {
        if (!_inputOpen)
            _process.CloseInput();
        else if (Fcntl(Fd(_process.InputPipe), SetStatusFlags, NonBlock) < 0)
            throw new IOException($"fcntl: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>
    /// After a failure (no poll, no thread, a first process that outlived its kill): what runs goes, and the first process
    /// is reaped whenever it ends (it sends no SIGCHLD: nobody else would, and it would stay a zombie).
    /// </summary>
    private void Abandon()
    {
        if (_exitCode is not null)
            return;
        _process.Kill();
        _cgroup?.Kill();
        try
        {
            _process.ReapWhenEnded();
        }
        catch (Exception e) when (e is OutOfMemoryException or ThreadStartException)
        {
            // No thread for it either: the zombie goes with the agent.
        }
    }

    private AgentReply Reply() => new() { Ok = true, ExitCode = _exitCode!.Value, Killed = _killed };

    private void Release()
    {
        ArrayPool<byte>.Shared.Return(_frame);
        _frame = [];
    }

    /// <summary>Serves until the command ended and its output was drained (true), or until <paramref name="until"/> (false: call again).</summary>
    private bool RunUntil(long until)
    {
        var fds = stackalloc PollFd[5];
        while (true)
        {
            var now = Environment.TickCount64;
            if (_exitCode is not null && ((!_outputOpen && !_errorOpen) || now >= _drainAt))
                return true;
            if (_exitCode is null && now >= _killGraceAt)
            {
                _cgroup?.Kill();
                throw new TimeoutException($"The command's first process did not end within {ExecHandler.KillGrace.TotalSeconds:0} s of its kill (stuck in the kernel?).");
            }
            if (_exitCode is null && now >= _backstopAt)
                Kill();
            if (now >= until)
                return false;
            var wakeAt = Math.Min(until, _exitCode is not null ? _drainAt : Math.Min(_killGraceAt, _backstopAt));
            int n = 0, output = -1, error = -1, exit = -1, host = -1, input = -1;
            if (_outputOpen)
                fds[output = n++] = new PollFd(Fd(_process.OutputPipe), PollIn);
            if (_errorOpen)
                fds[error = n++] = new PollFd(Fd(_process.ErrorPipe), PollIn);
            if (_exitCode is null)
                fds[exit = n++] = new PollFd(Fd(_process.Pidfd), PollIn);
            // The host's next frame only once its last input was written: a command that reads no input holds the host back,
            // as a pipe would; its hang-up shows all the same.
            if (_hostOpen)
                fds[host = n++] = new PollFd(_host, _pending is null ? PollIn : (short)0);
            if (_pending is not null)
                fds[input = n++] = new PollFd(Fd(_process.InputPipe), PollOut);
            if (Poll(fds, (nuint)n, (int)Math.Clamp(wakeAt - now, 0, int.MaxValue)) < 0)
            {
                if (Marshal.GetLastPInvokeError() == Interrupted)
                    continue;
                throw new IOException($"poll: {Marshal.GetLastPInvokeErrorMessage()}");
            }
            if (output >= 0 && fds[output].Revents != 0)
                _outputOpen = Pump(_process.OutputPipe, AgentFrame.Stdout);
            if (error >= 0 && fds[error].Revents != 0)
                _errorOpen = Pump(_process.ErrorPipe, AgentFrame.Stderr);
            if (input >= 0 && fds[input].Revents != 0)
                WriteInput();
            // Its end before the host's frames: a command that ended as the host went away was not killed.
            if (exit >= 0 && fds[exit].Revents != 0)
                Reap();
            if (host >= 0 && _hostOpen && fds[host].Revents != 0)
            {
                if (fds[host].Events == 0)
                    Kill();
                else
                    ReadHost();
            }
        }
    }

    /// <summary>One read of an output pipe, sent as a frame; false at its end.</summary>
    private bool Pump(SafeHandle pipe, byte kind)
    {
        fixed (byte* frame = _frame)
        {
            var n = Read(Fd(pipe), frame + Header, Chunk);
            if (n < 0)
                return Marshal.GetLastPInvokeError() is Interrupted or WouldBlock;
            if (n == 0)
                return false;
            // The host is gone: the pipe is still drained, so that the command never blocks on it.
            if (_sending)
            {
                BinaryPrimitives.WriteInt32LittleEndian(_frame, (int)n);
                _frame[4] = kind;
                if (!SendAll(frame, Header + (int)n))
                    HostGone();
            }
            return true;
        }
    }

    /// <summary>The pidfd is readable: the first process ended. It is reaped, and what it left in its cgroup goes with it.</summary>
    private void Reap()
    {
        if (_process.TryReap() is not { } code)
            return;
        _exitCode = code;
        _hostOpen = false;
        _pending = null;
        _cgroup?.Kill();
        _drainAt = Environment.TickCount64 + DrainMilliseconds;
    }

    /// <summary>SIGKILL to the first process (its cgroup's turn comes once it ended); the host's further frames are not read.</summary>
    private void Kill()
    {
        _killed = true;
        _hostOpen = false;
        _pending = null;
        // Fired once: from now on the kill's grace is the only deadline (a past one would make every poll return at once).
        _backstopAt = long.MaxValue;
        if (_killGraceAt != long.MaxValue)
            return;
        _process.Kill();
        _killGraceAt = Environment.TickCount64 + (long)ExecHandler.KillGrace.TotalMilliseconds;
    }

    private void ReadHost()
    {
        (byte Kind, byte[] Payload)? frame;
        try
        {
            frame = ReadFrame();
        }
        catch (InvalidDataException)
        {
            frame = null;
        }
        switch (frame)
        {
            case null:
                // The host went away (or sent nonsense): what it started goes, as when it asks.
                Kill();
                break;
            case { Kind: AgentFrame.Stdin } input when _inputOpen && input.Payload.Length > 0:
                (_pending, _pendingAt) = (input.Payload, 0);
                WriteInput();
                break;
            case { Kind: AgentFrame.StdinEnd }:
                if (_pending is null)
                    CloseInput();
                else
                    _closeInputWhenWritten = true;
                break;
            case { Kind: AgentFrame.Kill }:
                Kill();
                break;
        }
    }

    /// <summary>Writes what the host sent as far as the pipe takes it; the rest waits for poll. A command that closed its input drops it, as a pipe would.</summary>
    private void WriteInput()
    {
        fixed (byte* data = _pending)
        {
            while (_pending is not null)
            {
                var n = Write(Fd(_process.InputPipe), data + _pendingAt, _pending.Length - _pendingAt);
                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == Interrupted)
                        continue;
                    if (errno == WouldBlock)
                        return;
                    _pending = null;
                    CloseInput();
                    return;
                }
                _pendingAt += (int)n;
                if (_pendingAt < _pending.Length)
                    continue;
                _pending = null;
                if (_closeInputWhenWritten)
                    CloseInput();
            }
        }
    }

    /// <summary>
    /// A frame could not be sent whole (the host went away, or read nothing for a minute): nothing more goes to it, not even
    /// the reply, which would follow half a frame; the command is killed, as when the host hangs up.
    /// </summary>
    private void HostGone()
    {
        _sending = false;
        Shutdown(_host, ShutdownBoth);
        if (_exitCode is null)
            Kill();
    }

    private void CloseInput()
    {
        _inputOpen = false;
        _process.CloseInput();
    }

    /// <summary>One frame from the host; null where the connection ended (or stalled inside a frame).</summary>
    private (byte Kind, byte[] Payload)? ReadFrame()
    {
        var header = stackalloc byte[Header];
        if (!Receive(header, Header))
            return null;
        var length = BinaryPrimitives.ReadInt32LittleEndian(new ReadOnlySpan<byte>(header, 4));
        if (length is < 0 or > AgentFrame.MaxPayload)
            throw new InvalidDataException($"A frame of {length} bytes: more than the {AgentFrame.MaxPayload} allowed.");
        var payload = new byte[length];
        fixed (byte* data = payload)
            return Receive(data, length) ? (header[4], payload) : null;
    }

    private bool Receive(byte* into, int length)
    {
        for (var read = 0; read < length; )
        {
            var n = Recv(_host, into + read, length - read, DontWait);
            if (n > 0)
                read += (int)n;
            else if (n == 0)
                return false;
            else if (Marshal.GetLastPInvokeError() is var errno && errno != Interrupted && (errno != WouldBlock || !WaitFor(PollIn)))
                return false;
        }
        return true;
    }

    /// <summary>Sends all of a frame; false where the host is gone.</summary>
    private bool SendAll(byte* data, int length)
    {
        for (var sent = 0; sent < length; )
        {
            var n = Send(_host, data + sent, length - sent, DontWait | NoSignal);
            if (n >= 0)
                sent += (int)n;
            else if (Marshal.GetLastPInvokeError() is var errno && errno != Interrupted && (errno != WouldBlock || !WaitFor(PollOut)))
                return false;
        }
        return true;
    }

    private bool WaitFor(short events)
    {
        var fd = new PollFd(_host, events);
        return Poll(&fd, 1, HostMilliseconds) > 0;
    }

    private static int Fd(SafeHandle handle) => (int)handle.DangerousGetHandle();

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd(int fd, short events)
    {
        public int Fd = fd;
        public short Events = events;
        public short Revents;
    }

    [DllImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static extern int Poll(PollFd* fds, nuint count, int timeout);

    [DllImport("libc", EntryPoint = "read", SetLastError = true)]
    private static extern nint Read(int fd, byte* buffer, nint count);

    [DllImport("libc", EntryPoint = "write", SetLastError = true)]
    private static extern nint Write(int fd, byte* buffer, nint count);

    [DllImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static extern nint Recv(int fd, byte* buffer, nint count, int flags);

    [DllImport("libc", EntryPoint = "send", SetLastError = true)]
    private static extern nint Send(int fd, byte* buffer, nint count, int flags);

    [DllImport("libc", EntryPoint = "shutdown", SetLastError = true)]
    private static extern int Shutdown(int fd, int how);

    [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static extern int Fcntl(int fd, int command, int argument);
}
