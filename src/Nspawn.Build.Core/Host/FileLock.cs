namespace Nspawn.Build;

/// <summary>An exclusive lock on a file (flock under .NET's FileShare.None), held until disposed; dies with the process.</summary>
internal sealed class FileLock : IAsyncDisposable
{
    private readonly FileStream _stream;

    private FileLock(FileStream stream) => _stream = stream;

    public static async Task<FileLock> AcquireAsync(string path, Action onWait, CancellationToken cancellationToken)
    {
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
                if (!told)
                    onWait();
                told = true;
                await Task.Delay(250, cancellationToken);
            }
        }
    }

    public ValueTask DisposeAsync() => _stream.DisposeAsync();
}
