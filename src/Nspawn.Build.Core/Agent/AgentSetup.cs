using System.Runtime.InteropServices;
using System.Text.Json;

namespace Nspawn.Build.Agent;

/// <summary>
/// The agent of a machine, from the host's side: a root-only folder per machine (its unit, its runtime settings and
/// the folder of its socket), the binds that give the guest the agent, the host's .NET runtime (read-only) and the
/// unit in /etc/systemd/system, and the wait for its answer. Nothing is added to the image.
/// </summary>
internal static class AgentSetup
{
    public const string UnitName = "nspawn-agent.service";
    private const string AgentFile = "Nspawn.Testing.Agent.dll";
    private const string GuestDotnet = "/run/nspawn-agent-dotnet";
    private const string GuestBin = "/run/nspawn-agent-bin";
    private const string GuestEtc = "/run/nspawn-agent-etc";
    private const string GuestSocketDir = "/run/nspawn-agent";
    private static readonly UnixFileMode RootOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public static string AgentsDir => Path.Combine(MachineLauncher.StateDir, "agents");

    public static string DirOf(string machineName) => Path.Combine(AgentsDir, machineName);

    /// <summary>Where the agent listens, seen from the host: written by the guest, so only ever opened without following a link.</summary>
    public static string SocketDirOf(string machineName) => Path.Combine(DirOf(machineName), "sock");

    /// <summary>
    /// Makes the machine's agent folder and returns nspawn's options for it, then the arguments for the guest's init;
    /// none when there is no agent to offer (then a reason), and the machine works without it.
    /// </summary>
    /// <remarks><paramref name="guestRootUid"/>: the host UID of the guest's root in a user namespace, which must own the socket folder.</remarks>
    public static (IReadOnlyList<string> Options, IReadOnlyList<string> InitArguments, string? Problem) Prepare(string machineName, string? codeDir, uint? guestRootUid = null)
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
        // Read by the guest's systemd, which is not host root in a user namespace: root's, readable by all, written by none.
        var etc = Directory.CreateDirectory(Path.Combine(dir, "etc"), RootOnly | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute).FullName;
        Directory.CreateDirectory(SocketDirOf(machineName), RootOnly);
        if (guestRootUid is { } uid)
        {
            using var socketDir = NativeFile.Open(SocketDirOf(machineName), NativeFile.Path | NativeFile.Directory);
            NativeFile.Chown(socketDir, uid, uid);
        }
        File.WriteAllText(Path.Combine(etc, "agent.runtimeconfig.json"), RuntimeConfig());
        File.WriteAllText(Path.Combine(etc, UnitName), Unit());
        var options = new List<string>
        {
            $"--bind-ro={dotnet}:{GuestDotnet}",
            $"--bind-ro={Path.GetDirectoryName(agent)}:{GuestBin}",
            $"--bind-ro={etc}:{GuestEtc}",
            // In /etc/systemd/system, which the image has: a mount point under /run/systemd would be made there by nspawn as
            // host root, which the guest's root (in a user namespace) could then not write, and its systemd would not start.
            $"--bind-ro={Path.Combine(etc, UnitName)}:/etc/systemd/system/{UnitName}",
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
    /// Waits for the agent's answer once the guest is ready. The agent is ordered before the guest's multi-user.target,
    /// so it answers at once, or its unit failed (a guest that cannot run the runtime): then the machine has no agent.
    /// </summary>
    public static async Task<Machine> WaitAsync(Machine machine, string? problem, CancellationToken cancellationToken)
    {
        if (problem is not null)
            return machine with { AgentProblem = problem };
        var socketDeadline = DateTime.UtcNow + TimeSpan.FromSeconds(2);
        var answerDeadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        string? last = null;
        while (true)
        {
            try
            {
                var reply = await AgentConnection.PingAsync(machine.Name, TimeSpan.FromSeconds(5), cancellationToken);
                return machine with { Agent = SocketDirOf(machine.Name), AgentRuntime = reply.Runtime };
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException or InvalidDataException or JsonException)
            {
                last = e.Message;
            }
            var listening = FileStatus.Of(Path.Combine(SocketDirOf(machine.Name), "agent.sock")) is not null;
            if (DateTime.UtcNow > (listening ? answerDeadline : socketDeadline))
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
