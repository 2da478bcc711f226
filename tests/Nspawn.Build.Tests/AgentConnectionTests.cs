using System.Net.Sockets;
using Nspawn.Build.Agent;

namespace Nspawn.Build.Tests;

/// <summary>
/// A guest that keeps its agent's listen queue full (it connects again and again, and the agent never accepts)
/// cannot hold a call past its deadline: each test fills the queue of a socket of its own, in a folder of its own,
/// and the call must give up, as the exception the call throws at its deadline (not another failure). A hang fails the test.
/// </summary>
[Trait("Category", "Unit")]
public sealed class AgentConnectionTests : IDisposable
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(300);
    /// <summary>Far past every deadline here: only turns a hang into a failure.</summary>
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(20);

    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-agentconn-").FullName;
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly List<Socket> _queued = [];

    public AgentConnectionTests() => _listener.Bind(Endpoint);

    private UnixDomainSocketEndPoint Endpoint => new(Path.Combine(_dir, "agent.sock"));

    private Machine Target => Machine.Starting(new LaunchOptions("conn", "/nowhere") { MachineName = "nspawn-conn-1a2b3c4d" }, null, []) with { Agent = _dir };

    public void Dispose()
    {
        // Closing the listener also wakes a connect still waiting on it.
        _listener.Dispose();
        foreach (var socket in _queued)
            socket.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Listens with a backlog of one and never accepts: connections are queued until the queue is full.</summary>
    private void FillQueue()
    {
        _listener.Listen(1);
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { Blocking = false };
            try
            {
                socket.Connect(Endpoint);
                _queued.Add(socket);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock)
            {
                socket.Dispose();
                return;
            }
        }
    }

    /// <summary>What <paramref name="call"/> threw; a call still running after <see cref="Hang"/> fails the test.</summary>
    private static async Task<Exception?> Bounded(Func<Task> call)
    {
        // On a thread of its own: a connect that blocks would block the caller before it returns a task.
        var task = Task.Run(call);
        if (await Task.WhenAny(task, Task.Delay(Hang)) != task)
            Assert.Fail($"The call still hangs after {Hang.TotalSeconds} s.");
        return await Record.ExceptionAsync(() => task);
    }

    [Fact]
    public async Task A_connect_to_a_full_queue_gives_up_at_its_deadline()
    {
        FillQueue();
        using var deadline = new CancellationTokenSource(Short);
        var thrown = await Bounded(async () => await (await AgentConnection.ConnectAsync(_dir, deadline.Token)).DisposeAsync());
        Assert.IsAssignableFrom<OperationCanceledException>(thrown);
    }

    [Fact]
    public async Task A_connect_to_a_full_queue_goes_through_once_the_agent_accepts()
    {
        FillQueue();
        // Each attempt to connect takes the privileged scope once, after the one for opening the socket: a third
        // scope means the first attempt was turned away.
        var scopes = 0;
        IDisposable Privileged()
        {
            Interlocked.Increment(ref scopes);
            return new NoScope();
        }
        var connecting = Task.Run(() => AgentConnection.ConnectAsync(_dir, CancellationToken.None, Privileged));
        Assert.True(await Shell.WaitUntilAsync(() => Volatile.Read(ref scopes) >= 3 || connecting.IsCompleted, Hang), "the connect never tried again");
        Assert.False(connecting.IsCompleted);
        // Room in the queue again: the connect that was turned away gets in.
        var accepted = _queued.Select(_ => _listener.Accept()).ToList();
        try
        {
            await using var connection = await connecting.WaitAsync(Hang);
            Assert.True(connection.Stream.Socket.Connected);
        }
        finally
        {
            foreach (var socket in accepted)
                socket.Dispose();
        }
    }

    [Fact]
    public async Task A_ping_that_cannot_connect_times_out()
    {
        FillQueue();
        var thrown = await Bounded(() => AgentConnection.PingAsync(_dir, "nspawn-conn-1a2b3c4d", Short, CancellationToken.None));
        Assert.IsType<TimeoutException>(thrown);
    }

    [Fact]
    public async Task The_boot_waits_for_the_agent_no_longer_than_the_boot_time_left()
    {
        FillQueue();
        Machine? waited = null;
        var thrown = await Bounded(async () => waited = await AgentSetup.WaitAsync(Target, _dir, null, TimeSpan.FromSeconds(1), CancellationToken.None));
        Assert.Null(thrown);
        Assert.Null(waited!.AgentRuntime);
        Assert.Contains("did not answer", waited.AgentProblem);
    }

    [Fact]
    public async Task A_command_with_a_timeout_throws_TimeoutException_when_the_agent_never_accepts()
    {
        FillQueue();
        var client = new AgentClient(Target, _dir);
        var thrown = await Bounded(() => client.ExecAsync(["true"], new ExecOptions(), PipeSource.Null, PipeTarget.Null, PipeTarget.Null, Short, CancellationToken.None));
        Assert.IsType<TimeoutException>(thrown);
    }

    [Fact]
    public async Task A_cancelled_command_throws_OperationCanceledException_when_the_agent_never_accepts()
    {
        FillQueue();
        var client = new AgentClient(Target, _dir);
        using var cancel = new CancellationTokenSource(Short);
        var thrown = await Bounded(() => client.ExecAsync(["true"], new ExecOptions(), PipeSource.Null, PipeTarget.Null, PipeTarget.Null, null, cancel.Token));
        Assert.IsAssignableFrom<OperationCanceledException>(thrown);
    }

    [Fact]
    public async Task A_call_and_a_read_keep_their_deadline_when_the_agent_never_accepts()
    {
        FillQueue();
        var client = new AgentClient(Target, _dir);
        var invoke = await Bounded(() => client.InvokeAsync(new AgentRequest(AgentRequest.Invoke) { Type = "T", Method = "M" }, Short, CancellationToken.None));
        Assert.IsType<TimeoutException>(invoke);

        using var cancel = new CancellationTokenSource(Short);
        var read = await Bounded(() => client.ReadFileAsync("/etc/hostname", cancel.Token));
        Assert.IsAssignableFrom<OperationCanceledException>(read);
    }

    private sealed class NoScope : IDisposable
    {
        public void Dispose()
        {
        }
    }
}
