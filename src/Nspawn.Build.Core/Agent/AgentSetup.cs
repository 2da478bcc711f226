using System.Runtime.InteropServices;
using System.Text.Json;

namespace Nspawn.Build.Agent;

/// <summary>
/// The agent of a machine, from the host's side: a root-only folder per machine (its owner, its unit, its runtime
/// settings and the folder of its socket), the binds that give the guest the agent, the host's .NET runtime (read-only)
/// and the unit in /etc/systemd/system, and the wait for its answer. Nothing is added to the image. The socket
/// folder is the one the guest writes: a small tmpfs of its own, so that a guest cannot fill the host's /run.
/// </summary>
internal static class AgentSetup
{
    public const string UnitName = "nspawn-agent.service";
    /// <summary>The build that made the folder ("PID STARTTIME"): the reaper removes a folder whose build is gone before it recorded its machine.</summary>
    public const string OwnerFile = "owner";
    private const string AgentFile = "Nspawn.Testing.Agent.dll";
    private const string SocketFolder = "sock";
    /// <summary>The agent's socket in its folder.</summary>
    public const string SocketName = "agent.sock";
    private const string GuestDotnet = "/run/nspawn-agent-dotnet";
    private const string GuestBin = "/run/nspawn-agent-bin";
    private const string GuestEtc = "/run/nspawn-agent-etc";
    private const string GuestSocketDir = "/run/nspawn-agent";
    // The agent needs one socket there: room for a few, not for a guest's files.
    private const long SocketFolderSize = 256 << 10;
    private const int SocketFolderFiles = 64;
    /// <summary>A guest whose agent has not even made its socket soon after READY=1 has no agent (its unit failed): no need to wait for the whole boot time.</summary>
    private static readonly TimeSpan NoSocketGrace = TimeSpan.FromSeconds(2);
    /// <summary>A boot that took nearly all its time still gets this long for its agent's answer.</summary>
    private static readonly TimeSpan MinimumWait = TimeSpan.FromSeconds(1);
    private static readonly UnixFileMode RootOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public static string AgentsDir => Path.Combine(MachineLauncher.StateDir, "agents");

    public static string DirOf(string machineName) => Path.Combine(AgentsDir, machineName);

    /// <summary>Where the agent listens, seen from the host: written by the guest, so only ever opened without following a link.</summary>
    public static string SocketDirOf(string machineName) => Path.Combine(DirOf(machineName), SocketFolder);

    /// <summary>
    /// Makes the machine's agent folder and returns nspawn's options for it, then the arguments for the guest's init;
    /// none when there is no agent to offer (then a reason), and the machine works without it. With
    /// <paramref name="guestRootUid"/> (a guest in a user namespace), the socket folder is owned by that host uid and
    /// gid, the guest's root; else by root.
    /// </summary>
    public static (IReadOnlyList<string> Options, IReadOnlyList<string> InitArguments, string? Problem) Prepare(string machineName, string? codeDir, uint? guestRootUid = null)
    {
        Directory.CreateDirectory(MachineLauncher.StateDir);
        Directory.CreateDirectory(AgentsDir, RootOnly);
        return PrepareDir(DirOf(machineName), codeDir, guestRootUid);
    }

    /// <summary><see cref="Prepare"/> in the folder <paramref name="dir"/>.</summary>
    internal static (IReadOnlyList<string> Options, IReadOnlyList<string> InitArguments, string? Problem) PrepareDir(string dir, string? codeDir, uint? guestRootUid)
    {
        var agent = Path.Combine(Path.GetDirectoryName(typeof(AgentSetup).Assembly.Location)!, AgentFile);
        if (!File.Exists(agent))
            return ([], [], $"the agent ({agent}) is not there");
        if (DotnetRoot() is not { } dotnet)
            return ([], [], $"the .NET runtime of this process ({RuntimeEnvironment.GetRuntimeDirectory()}) is not in a dotnet root folder");
        RemoveDir(dir);
        Directory.CreateDirectory(dir, RootOnly);
        // Its owner first: a build killed from here on leaves a folder the reaper knows to be stale.
        var self = Environment.ProcessId;
        using (var owner = NativeFile.CreateNoFollow(Path.Combine(dir, OwnerFile)))
            owner.Write(System.Text.Encoding.ASCII.GetBytes($"{self} {ProcessInfo.StartTime(self) ?? 0}\n"));
        // Read by the guest's systemd, which is not host root in a user namespace: root's, readable by all, written by none.
        var etc = Directory.CreateDirectory(Path.Combine(dir, "etc"), RootOnly | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute).FullName;
        File.WriteAllText(Path.Combine(etc, "agent.runtimeconfig.json"), RuntimeConfig());
        // Last: nothing after it can fail and leave the mount behind.
        var socketDir = Directory.CreateDirectory(Path.Combine(dir, SocketFolder), RootOnly).FullName;
        try
        {
            Tmpfs.Mount(socketDir, SocketFolderSize, SocketFolderFiles, guestRootUid ?? 0);
        }
        catch (IOException e)
        {
            RemoveDir(dir);
            return ([], [], $"its socket folder could not be made ({e.Message})");
        }
        var native = NativeAgent.Find(Path.GetDirectoryName(agent)!);
        File.WriteAllText(Path.Combine(etc, UnitName), Unit(native));
        var options = new List<string>
        {
            $"--bind-ro={dotnet}:{GuestDotnet}",
            $"--bind-ro={Path.GetDirectoryName(agent)}:{GuestBin}",
            $"--bind-ro={etc}:{GuestEtc}",
            // In /etc/systemd/system, which the image has: a mount point under /run/systemd would be made there by nspawn as
            // host root, which the guest's root (in a user namespace) could then not write, and its systemd would not start.
            $"--bind-ro={Path.Combine(etc, UnitName)}:/etc/systemd/system/{UnitName}",
            $"--bind={socketDir}:{GuestSocketDir}",
        };
        // The test's output folder at the same path, for InvokeAsync (nspawn's bind syntax cannot carry ':' in a path).
        if (codeDir is { Length: > 0 } && Path.IsPathRooted(codeDir) && !codeDir.Contains(':') && Directory.Exists(codeDir))
            options.Add($"--bind-ro={codeDir.TrimEnd('/')}");
        return (options, [$"systemd.wants={UnitName}"], null);
    }

    /// <summary>Whether the machine's agent has made its socket (it may not answer yet).</summary>
    public static bool IsListening(string machineName) => FileStatus.Of(Path.Combine(SocketDirOf(machineName), SocketName)) is not null;

    /// <summary>Removes the machine's agent folder: its socket folder unmounted first, then the rest (links are removed, never followed).</summary>
    public static void Remove(string machineName) => RemoveDir(DirOf(machineName));

    /// <summary><see cref="Remove"/> of the folder <paramref name="dir"/>.</summary>
    internal static void RemoveDir(string dir)
    {
        if (FileStatus.Of(dir) is not { IsDirectory: true } folder)
            return;
        // A mount of its own shows another mount id than the folder around it; after the unmount the plain, empty folder is back.
        var socketDir = Path.Combine(dir, SocketFolder);
        for (var stacked = 0; stacked < 8 && FileStatus.Of(socketDir) is { IsDirectory: true } mounted && mounted.MountId != folder.MountId; stacked++)
            Tmpfs.Unmount(socketDir);
        Directory.Delete(dir, recursive: true);
    }

    /// <summary>
    /// Removes the agent folders whose build is gone and whose machine has no record: a build killed after it made the
    /// folder and before it recorded the machine (the machines the reaper stops take theirs). Returns what it removed.
    /// </summary>
    public static IReadOnlyList<string> Reap() => Directory.Exists(AgentsDir) ? ReapIn(AgentsDir, MachineRegistry.Contains) : [];

    /// <summary><see cref="Reap"/> in the folder <paramref name="agentsDir"/>, with <paramref name="recorded"/> saying which machines have a record.</summary>
    internal static IReadOnlyList<string> ReapIn(string agentsDir, Func<string, bool> recorded)
    {
        var reaped = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories(agentsDir).Order(StringComparer.Ordinal).ToList())
        {
            // A folder without an owner (being made, or another version's) is not ours to judge.
            if (recorded(Path.GetFileName(dir)) || Owner(dir) is not var (pid, startTime) || ProcessInfo.IsRunning(pid, startTime))
                continue;
            try
            {
                RemoveDir(dir);
                reaped.Add(dir);
            }
            catch (IOException)
            {
                // Left to the next reaper: it must not fail the build that found it.
            }
        }
        return reaped;
    }

    private static (int Pid, ulong StartTime)? Owner(string dir)
    {
        var path = Path.Combine(dir, OwnerFile);
        if (FileStatus.Of(path) is not { IsRegularFile: true })
            return null;
        var fields = File.ReadAllText(path).Split(' ', StringSplitOptions.TrimEntries);
        return fields.Length == 2 && int.TryParse(fields[0], out var pid) && ulong.TryParse(fields[1], out var startTime) ? (pid, startTime) : null;
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
            var listening = FileStatus.Of(Path.Combine(socketDir, SocketName)) is not null;
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
    /// With <paramref name="native"/> (its path below the agent's folder), the native agent runs, the managed one
    /// (<see cref="ManagedCommand"/>) being its InvokeAsync host; a guest that cannot load it (its probe, `--probe`, fails)
    /// gets the managed agent for all. Either replaces the unit's shell: the agent is the main process, the only one that may notify.
    /// </summary>
    private static string Unit(string? native) => string.Join('\n',
        "[Unit]",
        "Description=Nspawn.Build agent",
        "DefaultDependencies=no",
        "Before=multi-user.target shutdown.target",
        "Conflicts=shutdown.target",
        "",
        "[Service]",
        "Type=notify",
        native is null ? $"ExecStart={ManagedCommand}"
            : $"ExecStart={NativeAgent.Launch} {NativeAgent.LoaderPath} {GuestBin}/{native} {ManagedCommand}",
        "Environment=DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_EnableDiagnostics=0 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 "
            // The native agent's heap in 1 MiB regions with a 1 MiB gen0 budget (hex): about 16 MiB resident, not 36.
            + (native is null ? $"DOTNET_GCgen0size={ManagedGen0Size}" : $"DOTNET_GCgen0size={NativeAgent.Gen0Size} DOTNET_GCRegionSize={NativeAgent.Gen0Size}"),
        "Delegate=yes",
        "TimeoutStartSec=30s",
        "OOMScoreAdjust=-500",
        "");

    /// <summary>The managed agent's gen0 budget (hex, as the runtime reads it): 4 MiB, for the tests' code that InvokeAsync runs.</summary>
    public const string ManagedGen0Size = "400000";

    private static string ManagedCommand => $"{GuestDotnet}/dotnet exec --runtimeconfig {GuestEtc}/agent.runtimeconfig.json {GuestBin}/{AgentFile}";
}
