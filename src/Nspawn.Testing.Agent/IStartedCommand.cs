namespace Nspawn.Testing.Agent;

/// <summary>A command's first process, started by <see cref="ShellCommand"/> (the managed agent) or by the native agent's own start.</summary>
internal interface IStartedCommand : IDisposable
{
    /// <summary>The command's standard input (a pipe).</summary>
    Stream Input { get; }

    Stream Output { get; }

    Stream Error { get; }

    /// <summary>Its exit code once it ended (128 + the signal that ended it).</summary>
    Task<int> ExitAsync();

    /// <summary>Ends its input: it reads end of file.</summary>
    void CloseInput();

    /// <summary>Kills it and what it started, should its cgroup not hold them all (a shell killed before it moved into it, no cgroup).</summary>
    void KillTree();
}
