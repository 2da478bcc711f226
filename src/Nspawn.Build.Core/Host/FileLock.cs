namespace Nspawn.Build;

/// <summary>An exclusive lock on a file (flock under .NET's FileShare.None), held until disposed; dies with the process.</summary>
internal sealed class FileLock : IAsyncDisposable
{
    private readonly FileStream _stream;

    private FileLock(FileStream stream) => _stream = stream;

    /// <summary>
    /// Waits for the lock, telling <paramref name="onWait"/> once; after <paramref name="limit"/> it gives up with
    /// NSPAWN0024 naming <paramref name="what"/>, so that a build that hangs holding the lock cannot hang this one too.
    /// </summary>
    public static async Task<FileLock> AcquireAsync(string path, Action onWait, TimeSpan limit, string what, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + limit;
        var told = false;
        while (true)
        {
            try
            {
                // Never through a symlink: the lock may sit in a folder a user can write (overlay mode's plain folder).
                var handle = NativeFile.Open(path, NativeFile.ReadOnly | NativeFile.Create);
                if (NativeFile.TryLock(handle))
                    return new FileLock(new FileStream(handle, FileAccess.Read));
                handle.Dispose();
                throw new IOException("held by another build");
            }
            catch (IOException) when (FileStatus.Of(path) is { IsRegularFile: true })
            {
                if (DateTime.UtcNow >= deadline)
                    throw new NspawnException(ErrorCodes.CommandFailed,
                        $"{what}: the lock '{path}' was still held after {limit.TotalSeconds:0} s, so the step was not started. Another build holds it; wait for it to end, or stop it.");
                if (!told)
                    onWait();
                told = true;
                await Task.Delay(250, cancellationToken);
            }
        }
    }

    public ValueTask DisposeAsync() => _stream.DisposeAsync();
}
