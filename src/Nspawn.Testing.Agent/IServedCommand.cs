using Nspawn.Build.Agent;

namespace Nspawn.Testing.Agent;

/// <summary>A command the native agent started itself (spawn.c), which serves its whole call on one thread (PolledExec).</summary>
internal interface IServedCommand : IDisposable
{
    /// <summary>
    /// Streams its output to <paramref name="connection"/> (none: a warm-up, its output dropped), takes the host's input
    /// and kill, kills what it left (<paramref name="cgroup"/>), and replies as <see cref="ExecHandler"/> does.
    /// </summary>
    Task<AgentReply> ServeAsync(Connection? connection, AgentRequest request, CommandCgroup? cgroup);
}
