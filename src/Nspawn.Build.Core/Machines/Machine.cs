using System.Text.Json.Serialization;

namespace Nspawn.Build;

/// <summary>A running ephemeral machine: all that is needed to reach it and to stop it, from this process or another.</summary>
[JsonConverter(typeof(MachineJson))]
internal sealed record Machine(
    string LogicalName,
    string Name,
    string Image,
    string ImageDir,
    int LeaderPid,
    ulong LeaderStartTime,
    int NspawnPid,
    ulong NspawnStartTime,
    string? Snapshot,
    string? Unit,
    IReadOnlyList<string> Cgroups)
{
    /// <summary>How long a stop waits for the guest to power off before it kills it (NspawnStopTimeout): every stop path uses it.</summary>
    public TimeSpan StopTimeout { get; init; } = Settings.StopTimeout.Default;

    /// <summary>How long its boot could take (NspawnBootTimeout): a test's own machine takes it from ContainerTest's.</summary>
    public TimeSpan BootTimeout { get; init; } = Settings.BootTimeout.Default;

    /// <summary>Its address on a private network, which the host reaches it at; null on the host's network or none.</summary>
    public string? Address { get; init; }

    /// <summary>The bridge of that network, whose address it gives back when it stops.</summary>
    public string? Network { get; init; }

    /// <summary>The host folders it may write (writable binds): what root wrote there goes back to the sudo user when it stops.</summary>
    public IReadOnlyList<string> WritableBinds { get; init; } = [];
    /// <summary>When it was started: the TRX files written since then are those of its test run.</summary>
    public DateTime Started { get; init; }

    /// <summary>The file nspawn writes the console to (direct launcher), root's only, removed at stop; with the systemd launcher the console is in the unit's journal.</summary>
    public string? ConsoleFile { get; init; }

    /// <summary>The test results folder; none for a test's own machine, whose logs are not saved.</summary>
    public string? ResultsDir { get; init; }

    public KeepLogs KeepLogs { get; init; } = Settings.KeepLogs.Default;

    /// <summary>Left running when its tests fail (NspawnKeepOnFailure).</summary>
    public bool KeepOnFailure { get; init; }

    /// <summary>The folder of its agent's socket (on the host), once the agent answered; null: commands take the confined path, and InvokeAsync cannot run.</summary>
    public string? Agent { get; init; }

    /// <summary>The runtime version the agent runs on.</summary>
    public string? AgentRuntime { get; init; }

    /// <summary>Why the machine has no agent.</summary>
    public string? AgentProblem { get; init; }

    /// <summary>The first host UID of its user namespace (its root); null when it runs without one (NspawnPrivateUsers=false).</summary>
    public uint? UidShift { get; init; }

    /// <summary>The tests' output folder, bound read-only at the same path for InvokeAsync.</summary>
    public string? CodeDir { get; init; }

    /// <summary>Where its journal and console are saved: TestResults/nspawn/LOGICAL.</summary>
    public string? LogsDir => ResultsDir is null ? null : Path.Combine(ResultsDir, Defaults.LogsFolder, LogicalName);

    /// <summary>The record of a machine about to start, before nspawn runs: enough for the reaper to clean up after a crash.</summary>
    public static Machine Starting(LaunchOptions options, string? unit, IReadOnlyList<string> cgroups) =>
        new(options.LogicalName, options.MachineName, options.Image, options.ImageDir, 0, 0, 0, 0, null, unit, cgroups)
        {
            Address = options.Attachment?.Address,
            Network = options.Attachment?.Network.Bridge,
            WritableBinds = options.Binds.Where(b => !b.ReadOnly).Select(b => b.Source).ToList(),
            StopTimeout = options.StopTimeout, BootTimeout = options.BootTimeout, Started = DateTime.UtcNow,
            ResultsDir = options.ResultsDir, KeepLogs = options.KeepLogs, KeepOnFailure = options.KeepOnFailure, CodeDir = options.CodeDir,
            UidShift = options.UidShift,
        };
}
