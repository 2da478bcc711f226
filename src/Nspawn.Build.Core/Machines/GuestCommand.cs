using System.Globalization;

namespace Nspawn.Build;

/// <summary>
/// A command started from the host in a machine's namespaces (nsenter on its leader), confined as the guest's
/// own processes are: in the leader's cgroups (so under its device policy and limits) and cgroup namespace,
/// with the leader's capability bounding set, no new privileges and none of our environment. nsenter alone
/// would run the guest's binary with every capability of the host, outside the machine's cgroups.
/// </summary>
internal static class GuestCommand
{
    // Enters each cgroup given before "--", failing when one cannot be entered, then becomes the command after it: a fixed script, arguments stay a list.
    private const string EnterCgroupsAndExec =
        "while [ \"$1\" != -- ]; do echo $$ > \"$1\" || { echo \"cannot enter the machine's cgroup $1\" >&2; exit 125; }; shift; done; shift; exec \"$@\"";

    /// <summary>The command line that runs <paramref name="command"/> (a program of the guest and its arguments) in the machine.</summary>
    public static IReadOnlyList<string> Arguments(Machine machine, IReadOnlyList<string> command)
    {
        var pid = machine.LeaderPid;
        string status, cgroups;
        try
        {
            status = File.ReadAllText($"/proc/{pid}/status");
            cgroups = File.ReadAllText($"/proc/{pid}/cgroup");
        }
        catch (IOException)
        {
            status = cgroups = "";
        }
        // The start time rules out a reused PID: never enter the namespaces of a process that is not the machine's.
        if (status.Length == 0 || !ProcessInfo.IsRunning(pid, machine.LeaderStartTime))
            throw new InvalidOperationException($"Machine {machine.Name} is not running: its leader (PID {pid}) is gone.");
        var procs = CgroupScope.OwnCgroups(cgroups, MountTable.Read()).Select(dir => Path.Combine(dir, "cgroup.procs"));
        return
        [
            ToolLocator.Require(Tool.Sh), "-c", EnterCgroupsAndExec, "sh", .. procs, "--",
            ToolLocator.Require(Tool.Setpriv), "--no-new-privs", "--reset-env", $"--bounding-set={BoundingSet(status)}", "--",
            ToolLocator.Require(Tool.Nsenter), "-t", pid.ToString(CultureInfo.InvariantCulture), "-m", "-u", "-i", "-n", "-p", "-C", "--", .. command,
        ];
    }

    /// <summary>setpriv's --bounding-set for the capabilities in the CapBnd line of a /proc/PID/status: exactly those.</summary>
    public static string BoundingSet(string procStatus)
    {
        var line = procStatus.Split('\n').FirstOrDefault(l => l.StartsWith("CapBnd:", StringComparison.Ordinal))
            ?? throw new InvalidOperationException("The machine's leader has no CapBnd line in /proc/PID/status.");
        var mask = ulong.Parse(line["CapBnd:".Length..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return string.Join(',', Enumerable.Range(0, 64).Where(bit => (mask >> bit & 1) != 0).Select(bit => $"+cap_{bit}").Prepend("-all"));
    }
}
