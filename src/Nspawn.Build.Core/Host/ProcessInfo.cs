using System.Runtime.InteropServices;

namespace Nspawn.Build;

/// <summary>Processes by PID, with their start time to rule out PID reuse.</summary>
internal static class ProcessInfo
{
    public const int SigInt = 2;
    public const int SigKill = 9;
    public const int SigTerm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int NativeKill(int pid, int signal);

    /// <summary>Field 22 of /proc/PID/stat (start time in clock ticks since boot), or null when the process is gone or a zombie.</summary>
    public static ulong? StartTime(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return null;
        }
        return ParseStartTime(stat);
    }

    public static ulong? ParseStartTime(string stat)
    {
        // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
        var close = stat.LastIndexOf(')');
        if (close < 0)
            return null;
        var fields = stat[(close + 2)..].Split(' ');
        if (fields.Length < 20 || fields[0] == "Z" || fields[0] == "X")
            return null;
        return ulong.TryParse(fields[19], out var t) ? t : null;
    }

    public static bool IsRunning(int pid, ulong startTime) => pid > 0 && StartTime(pid) == startTime;

    public static void Signal(int pid, ulong startTime, int signal)
    {
        if (IsRunning(pid, startTime))
            NativeKill(pid, signal);
    }

    /// <summary>Waits until the process is gone; false when it is still there after <paramref name="timeout"/>.</summary>
    public static async Task<bool> WaitForExitAsync(int pid, ulong startTime, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (IsRunning(pid, startTime))
        {
            if (DateTime.UtcNow >= deadline)
                return false;
            await Task.Delay(10, cancellationToken);
        }
        return true;
    }
}
