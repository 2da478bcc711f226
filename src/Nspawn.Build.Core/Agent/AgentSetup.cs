using System.Runtime.InteropServices;
using System.Text.Json;

namespace Nspawn.Build.Agent;

/// <summary>
/// The agent of a machine, from the host's side: a root-only folder per machine (its unit, its runtime settings and
/// the folder of its socket), the binds that give the guest the agent, the host's .NET runtime (read-only) and the
/// unit under /run/systemd/system, and the wait for its answer. Nothing is added to the image.
/// </summary>
internal static class AgentSetup
{
    public const string UnitName = "nspawn-agent.service";
    private const string AgentFile = "Nspawn.Testing.Agent.dll";
    private const string GuestDotnet = "/run/nspawn-agent-dotnet";
    private const string GuestBin = "/run/nspawn-agent-bin";
    private const string GuestEtc = "/run/nspawn-agent-etc";
    private const string GuestSocketDir = "/run/nspawn-agent";
    /// <summary>A guest whose agent has not even made its socket soon after READY=1 has no agent (its unit failed): no need to wait for the whole boot time.</summary>
    private static readonly TimeSpan NoSocketGrace = TimeSpan.FromSeconds(2);
    /// <summary>A boot that took nearly all its time still gets this long for its agent's answer.</summary>
    private static readonly TimeSpan MinimumWait = TimeSpan.FromSeconds(1);
    private static readonly UnixFileMode RootOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public static string AgentsDir => Path.Combine(MachineLauncher.StateDir, "agents");

    public static string DirOf(string machineName) => Path.Combine(AgentsDir, machineName);

    /// <summary>Where the agent listens, seen from the host: written by the guest, so only ever opened without following a link.</summary>
    public static string SocketDirOf(string machineName) => Path.Combine(DirOf(machineName), "sock");

    /// <summary>
    /// Makes the machine's agent folder and returns nspawn's options for it, then the arguments for the guest's init;
    /// none when there is no agent to offer (then a reason), and the machine works without it.
    /// </summary>
    public static (IReadOnlyList<string> Options, IReadOnlyList<string> InitArguments, string? Problem) Prepare(string machineName, string? codeDir)
    {
        var agent = Path.Combine(Path.GetDirectoryName(typeof(AgentSetup).Assembly.Location)!, AgentFile);
        if (!File.Exists(agent))
            return ([], [], $"the agent ({agent}) is not there");
        if (DotnetRoot() is not { } dotnet)
            return ([], [], $"the .NET runtime of this process ({RuntimeEnvironment.GetRuntimeDirectory()}) is not in a dotnet root folder");
        Directory.CreateDirectory(MachineLauncher.StateDir);
        Directory.CreateDirectory(AgentsDir, RootOnly);
        var dir = DirOf(machineName);
        Remove(machineName);
        Directory.CreateDirectory(dir, RootOnly);
        var etc = Directory.CreateDirectory(Path.Combine(dir, "etc"), RootOnly).FullName;
        Directory.CreateDirectory(SocketDirOf(machineName), RootOnly);
        File.WriteAllText(Path.Combine(etc, "agent.runtimeconfig.json"), RuntimeConfig());
        File.WriteAllText(Path.Combine(etc, UnitName), Unit());
        var options = new List<string>
        {
            $"--bind-ro={dotnet}:{GuestDotnet}",
            $"--bind-ro={Path.GetDirectoryName(agent)}:{GuestBin}",
            $"--bind-ro={etc}:{GuestEtc}",
            $"--bind-ro={Path.Combine(etc, UnitName)}:/run/systemd/system/{UnitName}",
            $"--bind={SocketDirOf(machineName)}:{GuestSocketDir}",
        };
        // The test's output folder at the same path, for InvokeAsync (nspawn's bind syntax cannot carry ':' in a path).
        if (codeDir is { Length: > 0 } && Path.IsPathRooted(codeDir) && !codeDir.Contains(':') && Directory.Exists(codeDir))
            options.Add($"--bind-ro={codeDir.TrimEnd('/')}");
        return (options, [$"systemd.wants={UnitName}"], null);
    }

    /// <summary>Removes the machine's agent folder (what the guest left in its socket folder too; links are removed, never followed).</summary>
    public static void Remove(string machineName)
    {
        var dir = DirOf(machineName);
        if (FileStatus.Of(dir) is { IsDirectory: true })
            Directory.Delete(dir, recursive: true);
    }

    /// <summary>
    /// Waits for the agent's answer once the guest is ready, for at most <paramref name="limit"/>: what is left of the
    /// machine's boot time (NspawnBootTimeout), at least a second. The agent is ordered before the guest's
    /// multi-user.target, so it answers at once, or its unit failed (a guest that cannot run the runtime): then the
    /// machine has no agent. A guest that keeps the agent's queue full cannot make the wait longer.
    /// </summary>
    public static Task<Machine> WaitAsync(Machine machine, string? problem, TimeSpan limit, CancellationToken cancellationToken) =>
        WaitAsync(machine, SocketDirOf(machine.Name), problem, limit, cancellationToken);

    /// <summary><see cref="WaitAsync(Machine, string?, TimeSpan, CancellationToken)"/> for the socket in <paramref name="socketDir"/>.</summary>
    internal static async Task<Machine> WaitAsync(Machine machine, string socketDir, string? problem, TimeSpan limit, CancellationToken cancellationToken)
    {
        if (problem is not null)
            return machine with { AgentProblem = problem };
        var started = DateTime.UtcNow;
        var wait = limit > MinimumWait ? limit : MinimumWait;
        var answerDeadline = started + wait;
        var socketDeadline = started + (wait < NoSocketGrace ? wait : NoSocketGrace);
        string? last = null;
        while (true)
        {
            try
            {
                var left = answerDeadline - DateTime.UtcNow;
                var reply = await AgentConnection.PingAsync(socketDir, machine.Name, left > TimeSpan.Zero ? left : TimeSpan.Zero, cancellationToken);
                return machine with { Agent = socketDir, AgentRuntime = reply.Runtime };
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException or InvalidDataException or JsonException)
            {
                last = e.Message;
            }
            var listening = FileStatus.Of(Path.Combine(socketDir, "agent.sock")) is not null;
            if (DateTime.UtcNow >= (listening ? answerDeadline : socketDeadline))
                return machine with { AgentProblem = $"the agent did not answer ({last}); 'systemctl status {UnitName}' in the machine says why" };
            await Task.Delay(10, cancellationToken);
        }
    }

    /// <summary>The folder of the dotnet that runs this process (its shared/Microsoft.NETCore.App/VERSION/ is three levels down).</summary>
    private static string? DotnetRoot()
    {
        var runtime = new DirectoryInfo(RuntimeEnvironment.GetRuntimeDirectory().TrimEnd('/'));
        var root = runtime.Parent?.Parent?.Parent?.FullName;
        return root is not null && File.Exists(Path.Combine(root, "dotnet")) && !root.Contains(':') ? root : null;
    }

    /// <summary>The newest runtime the host has (the agent targets net8.0): test assemblies of any version load in it.</summary>
    private static string RuntimeConfig() => """
        {"runtimeOptions":{"tfm":"net8.0","rollForward":"LatestMajor","framework":{"name":"Microsoft.NETCore.App","version":"8.0.0"},
         "configProperties":{"System.Globalization.Invariant":true,"System.GC.Concurrent":false,"System.GC.Server":false,"System.Runtime.TieredPGO":false}}}
        """;

    /// <summary>
    /// A service of the guest's systemd, confined as the guest's processes are. Type=notify and ordered before
    /// multi-user.target: the guest reports ready once the agent listens. Delegate=yes: a cgroup per command below it.
    /// </summary>
    private static string Unit() => string.Join('\n',
        "[Unit]",
        "Description=Nspawn.Build agent",
        "DefaultDependencies=no",
        "Before=multi-user.target shutdown.target",
        "Conflicts=shutdown.target",
        "",
        "[Service]",
        "Type=notify",
        $"ExecStart={GuestDotnet}/dotnet exec --runtimeconfig {GuestEtc}/agent.runtimeconfig.json {GuestBin}/{AgentFile}",
        "Environment=DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_EnableDiagnostics=0 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_GCgen0size=0x400000",
        "Delegate=yes",
        "TimeoutStartSec=30s",
        "OOMScoreAdjust=-500",
        "");
}
