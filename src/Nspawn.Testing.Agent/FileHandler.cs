using Nspawn.Build.Agent;

namespace Nspawn.Testing.Agent;

/// <summary>Reads and writes regular files of the machine, as its root (the guest's symlinks are the guest's business).</summary>
internal static class FileHandler
{
    public static async Task<AgentReply> ReadAsync(Connection connection, AgentRequest request)
    {
        using var handle = Open(request.Path, Native.ReadOnly, 0, out var refused);
        if (handle is null)
            return refused!;
        await using var file = new FileStream(handle, FileAccess.Read, 0);
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await file.ReadAsync(buffer)) > 0)
            await connection.SendAsync(AgentFrame.Stdout, buffer.AsMemory(0, n));
        return new AgentReply { Ok = true };
    }

    public static async Task<AgentReply> WriteAsync(Connection connection, AgentRequest request)
    {
        uint uid, gid;
        try
        {
            (uid, gid) = (Account.UserId(request.Owner ?? "root"), Account.GroupId(request.Group ?? "root"));
        }
        catch (ArgumentException e)
        {
            return Connection.Failure(e, AgentReply.Refused);
        }
        if (Path.GetDirectoryName(request.Path) is { Length: > 1 } folder && !Directory.Exists(folder))
            Directory.CreateDirectory(folder, (UnixFileMode)0b111_101_101);
        using var handle = Open(request.Path, Native.WriteOnly | Native.Create | Native.Truncate, request.Mode, out var refused);
        if (handle is null)
            return refused!;
        Native.Chown(handle, uid, gid);
        // Exactly the mode asked for, whatever the umask.
        File.SetUnixFileMode(handle, (UnixFileMode)request.Mode);
        await using var file = new FileStream(handle, FileAccess.Write, 0);
        while (await AgentFrame.ReadAsync(connection.Stream, CancellationToken.None) is { } frame)
        {
            if (frame.Kind == AgentFrame.StdinEnd)
                return new AgentReply { Ok = true };
            if (frame.Kind == AgentFrame.Stdin)
                await file.WriteAsync(frame.Payload);
        }
        throw new IOException("The host went away before the end of the file.");
    }

    /// <summary>A regular file, or null and the reply that says why not.</summary>
    private static Microsoft.Win32.SafeHandles.SafeFileHandle? Open(string? path, int flags, int mode, out AgentReply? refused)
    {
        refused = null;
        if (path is null || !path.StartsWith('/'))
        {
            refused = Connection.Failure(new ArgumentException($"'{path}' is not an absolute path."), AgentReply.Refused);
            return null;
        }
        Microsoft.Win32.SafeHandles.SafeFileHandle handle;
        try
        {
            handle = Native.Open(path, flags, mode);
        }
        catch (FileNotFoundException e)
        {
            refused = Connection.Failure(e, AgentReply.Missing);
            return null;
        }
        if (Native.IsRegularFile(handle))
            return handle;
        handle.Dispose();
        refused = Connection.Failure(new IOException($"{path} is not a regular file."), AgentReply.Refused);
        return null;
    }
}
