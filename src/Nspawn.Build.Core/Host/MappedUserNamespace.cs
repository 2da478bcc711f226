using System.Globalization;
using CliWrap;
using Microsoft.Win32.SafeHandles;

namespace Nspawn.Build;

/// <summary>
/// A handle of a user namespace whose IDs 0 to 65535 are host IDs from a shift on, as an idmapped mount needs one:
/// a short-lived unshare holds a new namespace, root writes its maps (unshare's own --map-users needs newuidmap),
/// and once its handle is open the holder is stopped.
/// </summary>
internal static class MappedUserNamespace
{
    public static async Task<SafeFileHandle> OpenAsync(uint shift, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // The sleep is the holder's own time limit: it ends by itself if this process dies first.
        var holder = Cli.Wrap(ToolLocator.Require(Tool.Unshare))
            .WithArguments(["--user", "--", ToolLocator.Require(Tool.Sleep), "30"])
            .WithValidation(CommandResultValidation.None)
            .ExecuteAsync(stop.Token);
        try
        {
            var ours = NamespaceOf("self");
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            // Until unshare has made its namespace, the PID is still in ours.
            while (NamespaceOf(holder.ProcessId.ToString(CultureInfo.InvariantCulture)) is not { } theirs || theirs == ours)
            {
                if (holder.Task.IsCompleted || DateTime.UtcNow > deadline)
                    throw new IOException($"Could not make a user namespace for UID {shift} (unshare --user): it did not start within 10 s, or ended.");
                await Task.Delay(5, cancellationToken);
            }
            var map = $"0 {shift.ToString(CultureInfo.InvariantCulture)} {UidRange.Size}\n";
            File.WriteAllText($"/proc/{holder.ProcessId}/uid_map", map);
            File.WriteAllText($"/proc/{holder.ProcessId}/gid_map", map);
            // A /proc magic link of the holder, which we started: the one link followed here.
            return File.OpenHandle($"/proc/{holder.ProcessId}/ns/user", FileMode.Open, FileAccess.Read);
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

    private static string? NamespaceOf(string pid)
    {
        try
        {
            return new FileInfo($"/proc/{pid}/ns/user").LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
