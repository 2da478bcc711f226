using System.Globalization;

namespace Nspawn.Build;

/// <summary>
/// The host UIDs a machine's user namespace maps its 65536 users to: guest root is the first of them, nobody
/// on the host. Each running machine has a range of its own, claimed by creating a file named after it (so two
/// builds never take one range), released when the machine has stopped, and reaped when its machine is gone.
/// Ranges lie in 0x70000000..0x70FFFFFF, which systemd leaves unused (its own pick for containers stays below).
/// </summary>
internal static class UidRange
{
    public const uint Size = 0x10000;
    private const uint First = 0x70000000;
    private const int Count = 256;

    public static string Dir => Path.Combine(MachineLauncher.StateDir, "uids");

    private static string PathOf(uint shift) => Path.Combine(Dir, shift.ToString("x8", CultureInfo.InvariantCulture));

    /// <summary>Claims a free range for <paramref name="machineName"/> and returns its first UID.</summary>
    public static uint Claim(string machineName)
    {
        Directory.CreateDirectory(MachineLauncher.StateDir);
        Directory.CreateDirectory(Dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // Start at a random slot: parallel builds rarely race for the same file, and a race is settled by O_EXCL.
        var start = Random.Shared.Next(Count);
        for (var i = 0; i < Count; i++)
        {
            var shift = First + (uint)((start + i) % Count) * Size;
            try
            {
                using var file = new FileStream(NativeFile.Open(PathOf(shift), NativeFile.WriteOnly | NativeFile.Create | NativeFile.Exclusive), FileAccess.Write);
                file.Write(System.Text.Encoding.UTF8.GetBytes(machineName));
                return shift;
            }
            catch (IOException) when (File.Exists(PathOf(shift)))
            {
            }
        }
        throw new NspawnException(ErrorCodes.BootFailed,
            $"Every one of the {Count} UID ranges for machines is taken ({Dir}). Stop machines that are no longer needed (NspawnReap, NspawnStopKept), then try again.");
    }

    /// <summary>Gives the range back once its machine is gone (only if it is still that machine's claim).</summary>
    public static void Release(uint shift, string machineName)
    {
        if (OwnerOf(shift) == machineName)
            File.Delete(PathOf(shift));
    }

    private static string? OwnerOf(uint shift)
    {
        try
        {
            return File.ReadAllText(PathOf(shift));
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Ranges whose machine is no longer recorded (a build killed between claim and record): released.</summary>
    public static IEnumerable<uint> ReapUnused(IReadOnlySet<string> runningMachines)
    {
        if (!Directory.Exists(Dir))
            yield break;
        foreach (var file in Directory.EnumerateFiles(Dir))
        {
            if (!uint.TryParse(Path.GetFileName(file), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var shift) || PathOf(shift) != file)
                continue;
            // A claim is seconds older than its record: leave young ones to their build.
            if (OwnerOf(shift) is not { } owner || runningMachines.Contains(owner) || DateTime.UtcNow - File.GetLastWriteTimeUtc(file) < TimeSpan.FromMinutes(2))
                continue;
            Release(shift, owner);
            yield return shift;
        }
    }
}
