using System.Globalization;

namespace Nspawn.Build;

/// <summary>
/// Commands in a machine without its agent: only through machined (systemd-run --machine), where the guest's own
/// systemd starts them, confined as its processes are (its seccomp filter, cgroups and user namespace). The host
/// never starts a program of the guest itself: one started from outside would run without the guest's seccomp filter.
/// </summary>
internal static class GuestCommand
{
    /// <summary>Why a machine without its agent and without machined takes no command.</summary>
    public static NspawnException NoChannel(Machine machine) => new(ErrorCodes.NoAgent,
        $"Machine '{machine.LogicalName}' ({machine.Name}) has no agent ({machine.AgentProblem ?? "it did not answer"}), and without host systemd no command can run in it: "
        + "the host never starts a program of the guest from outside, where it would escape the guest's seccomp filter. Fix what keeps the agent from running, or run on a host with systemd (NspawnLauncher=systemd-run).");

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
        // Through machined: no program of the guest runs on the host.
        return machine.Unit is not null ? ["systemd-run", $"--machine={machine.Name}", .. run] : throw NoChannel(machine);
    }

    /// <summary>
    /// Has journald take in what was logged before it (a datagram or a service's output it has not read yet) and
    /// write it out: a read right after a command that logged then sees its lines.
    /// </summary>
    public static IReadOnlyList<string> JournalSync { get; } = ["journalctl", "--sync"];

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

    /// <summary>How to get a shell in the machine, for a user at a terminal: in all its namespaces, its user namespace too.</summary>
    public static string Shell(Machine machine) =>
        machine.Unit is not null ? $"machinectl shell {machine.Name}" : $"nsenter -t {machine.LeaderPid.ToString(CultureInfo.InvariantCulture)} --all -- /bin/bash -l";
}
