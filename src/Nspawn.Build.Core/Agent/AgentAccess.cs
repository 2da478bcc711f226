namespace Nspawn.Build.Agent;

/// <summary>
/// Lets one host user reach a machine's agent (an up machine's, for the sudo user's test runs without root): that user
/// may pass through the root-only folders on the way and connect to the socket, and no other user can. In a user
/// namespace the agent is the guest's root, nobody on the host, so this gives the user no more than the guest has.
/// </summary>
internal static class AgentAccess
{
    private const int Execute = 1;
    private const int ReadWrite = 6;
    private const uint SocketType = 0xc000;

    /// <summary>Gives <paramref name="uid"/> the way to the agent of <paramref name="machineName"/>; nothing on the way is followed if it is a link.</summary>
    public static void Grant(string machineName, uint uid)
    {
        using var agents = NativeFile.Open(AgentSetup.AgentsDir, NativeFile.Path | NativeFile.Directory);
        using var machine = NativeFile.Open(machineName, NativeFile.Path | NativeFile.Directory, agents);
        // The socket folder is the guest's (its root owns the tmpfs): held open, and only a socket in it is let in.
        using var socketDir = NativeFile.Open(Path.GetFileName(AgentSetup.SocketDirOf(machineName)), NativeFile.Path | NativeFile.Directory, machine);
        using var socket = NativeFile.Open(AgentSetup.SocketName, NativeFile.Path, socketDir);
        if (FileStatus.Of(socket).Type != SocketType)
            throw new IOException($"The agent's socket of machine {machineName} is not a socket.");
        // The folder of every machine's agent folder is shared by all users' up machines: an ACL naming one user would
        // shut out the one before. Passing through it is everyone's; each folder in it stays its machine's user's only.
        using (var shared = NativeFile.Open(AgentSetup.AgentsDir, NativeFile.ReadOnly | NativeFile.Directory))
            NativeFile.ChangeMode(shared, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        PosixAcl.Allow(machine, uid, Execute);
        PosixAcl.Allow(socketDir, uid, Execute);
        PosixAcl.Allow(socket, uid, ReadWrite);
    }
}
