using System.Globalization;
using CliWrap;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// A handle of a user namespace whose IDs 0 to 65535 are host IDs from a shift on, as an idmapped mount needs one:
/// a short-lived unshare holds the namespace until its handle is open, then is stopped.
/// </summary>
internal static class MappedUserNamespace
{
    public static async Task<SafeFileHandle> OpenAsync(uint shift, CancellationToken cancellationToken)
    {
        var map = $"{shift.ToString(CultureInfo.InvariantCulture)},0,{UidRange.Size}";
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // The sleep is the holder's own time limit: it ends by itself if this process dies first.
        var holder = Cli.Wrap(ToolLocator.Require(Tool.Unshare))
            .WithArguments(["--user", $"--map-users={map}", $"--map-groups={map}", "--", ToolLocator.Require(Tool.Sleep), "30"])
            .WithValidation(CommandResultValidation.None)
            .ExecuteAsync(stop.Token);
        try
        {
            var expected = $"0 {shift} {UidRange.Size}";
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (true)
            {
                // The namespace is ready once unshare has written its map (before that, the PID may still be in ours).
                if (ReadMap(holder.ProcessId) == expected)
                    return NativeFile.Open($"/proc/{holder.ProcessId}/ns/user", NativeFile.ReadOnly);
                if (holder.Task.IsCompleted || DateTime.UtcNow > deadline)
                    throw new IOException($"Could not make a user namespace mapped from UID {shift} (unshare --map-users): it did not start within 10 s or ended.");
                await Task.Delay(5, cancellationToken);
            }
        }
        finally
        {
            stop.Cancel();
            try
            {
                await holder;
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private static string? ReadMap(int pid)
    {
        try
        {
            return string.Join(' ', File.ReadAllText($"/proc/{pid}/uid_map").Split((char[])[' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries));
        }
        catch (IOException)
        {
            return null;
        }
    }
}
