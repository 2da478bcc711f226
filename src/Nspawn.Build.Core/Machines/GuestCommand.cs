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

    /// <summary>A unit name of our own in the guest, such as nspawn-exec-1a2b3c4d5e6f7a8b.</summary>
    public static string NewUnitName(string kind) => $"nspawn-{kind}-{Guid.NewGuid():N}"[..(8 + kind.Length + 16)];

    /// <summary>
    /// <paramref name="command"/> as the transient unit <paramref name="unit"/> of the guest's systemd (systemd-run --wait --pipe):
    /// stopping the unit kills all it started, and <paramref name="timeout"/> is a backstop inside the machine too.
    /// </summary>
    public static IReadOnlyList<string> AsUnit(Machine machine, string unit, IReadOnlyList<string> command, string? user = null,
        string? workingDirectory = null, IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        if (command.Count == 0)
            throw new ArgumentException("The command is empty.", nameof(command));
        var run = new List<string> { "--wait", "--pipe", "--quiet", "--collect", "--service-type=exec", $"--unit={unit}" };
        if (user is not null)
            run.Add($"--uid={user}");
        if (workingDirectory is not null)
            run.Add($"--working-directory={workingDirectory}");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            if (name.Length == 0 || name.Contains('='))
                throw new ArgumentException($"'{name}' is not an environment variable name.", nameof(environment));
            run.Add($"--setenv={name}={value}");
        }
        if (timeout is { } limit)
            // A backstop inside the machine, should this process die before it stops the unit itself.
            run.Add($"--property=RuntimeMaxSec={Math.Ceiling(limit.TotalSeconds) + 5}");
        run.Add("--");
        run.AddRange(command);
        // Through machined where the machine is registered (no program of the guest runs on the host), else the
        // guest's own systemd-run, confined as the guest is (Arguments).
        return machine.Unit is not null
            ? ["systemd-run", $"--machine={machine.Name}", .. run]
            : Arguments(machine, ["systemd-run", .. run]);
    }



    /// <summary>
    /// The guest's journal as text with precise timestamps (journalctl of the guest, run inside it): every boot,
    /// every unit, or those since <paramref name="since"/> and of <paramref name="unit"/>.
    /// </summary>
    public static IReadOnlyList<string> Journal(DateTimeOffset? since = null, string? unit = null)
    {
        var args = new List<string> { "journalctl", "--no-pager", "--quiet", "--all", "--output=short-precise" };
        if (since is { } from)
            args.Add("--since=@" + (from.ToUnixTimeMilliseconds() / 1000m).ToString("0.000", CultureInfo.InvariantCulture));
        if (unit is not null)
            args.Add("--unit=" + unit);
        return args;
    }

    /// <summary>How to get a shell in the machine, for a user at a terminal.</summary>
    public static string Shell(Machine machine) =>
        machine.Unit is not null ? $"machinectl shell {machine.Name}" : $"nsenter -t {machine.LeaderPid.ToString(CultureInfo.InvariantCulture)} -m -u -i -n -p -- /bin/bash -l";
}
