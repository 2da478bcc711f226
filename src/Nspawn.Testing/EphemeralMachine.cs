using System.Collections.Concurrent;
using System.Linq.Expressions;
using System.Text;
using CliWrap;
using CliWrap.Buffered;
using Microsoft.Win32.SafeHandles;
using Nspawn.Build;
using Nspawn.Build.Agent;

namespace Nspawn.Testing;

/// <summary>
/// A running machine, for tests: the one ContainerTest started (<see cref="FromEnvironment"/>) or one of
/// the test's own (<see cref="StartAsync"/>). Commands, files and <see cref="InvokeAsync{T}(Expression{Func{T}}, TimeSpan?, CancellationToken)"/>
/// go through the machine's agent, a service of the guest's systemd; a command runs in a cgroup of its own there,
/// so that a timeout kills all it started. Where the agent cannot run, commands run as transient units of the
/// guest's systemd and files are reached through the machine's root.
/// </summary>
public sealed class EphemeralMachine : IAsyncDisposable
{
    // Machines the tests started: stopped at process exit if a test forgot to (the seed's atexit).
    private static readonly ConcurrentDictionary<string, EphemeralMachine> Owned = new();

    static EphemeralMachine() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        foreach (var m in Owned.Values)
            m.StopAsync().GetAwaiter().GetResult();
    };

    /// <summary>How long a copy may take: a machine that sends or takes without end cannot hang a test.</summary>
    private static readonly TimeSpan TransferLimit = HostCommand.DefaultLimit;

    private readonly Machine _machine;
    private ConsoleFollower? _console;

    private EphemeralMachine(Machine machine, bool owned, string? poolDir = null)
    {
        _machine = machine;
        IsOwned = owned;
        Agent = machine.Agent is null ? null : new AgentClient(machine);
        _poolDir = poolDir;
    }

    /// <summary>The machine's agent; null where it could not run (then <see cref="Machine.AgentProblem"/> says why).</summary>
    internal AgentClient? Agent { get; }

    internal string? AgentProblem => _machine.AgentProblem;

    /// <summary>The warm pool's folder when the machine came from it: it goes back there to be stopped.</summary>
    private readonly string? _poolDir;

    public string Name => _machine.Name;
    public string LogicalName => _machine.LogicalName;
    public string Image => _machine.Image;
    public string ImageDir => _machine.ImageDir;
    public int LeaderPid => _machine.LeaderPid;
    /// <summary>Its address on the private network (NspawnNetwork=private), which the test process reaches it at; null on the host's network or none.</summary>
    public System.Net.IPAddress? Address => _machine.Address is { } address ? System.Net.IPAddress.Parse(address) : null;
    /// <summary>How long <see cref="StopAsync"/> waits for the guest to power off before it kills it.</summary>
    public TimeSpan StopTimeout => _machine.StopTimeout;
    /// <summary>Started by this process, and so stopped by <see cref="StopAsync"/>; a machine from the environment is left to the targets.</summary>
    public bool IsOwned { get; }

    /// <summary>Every machine ContainerTest started for these tests.</summary>
    public static IReadOnlyList<EphemeralMachine> AllFromEnvironment()
    {
        var file = Environment.GetEnvironmentVariable("NSPAWN_MACHINES_FILE");
        if (string.IsNullOrEmpty(file))
            return UpMachinesOfProject();
        if (!File.Exists(file))
            throw new InvalidOperationException($"NSPAWN_MACHINES_FILE names '{file}', which does not exist: the machines were stopped already.");
        ProcessPrivileges.Current.DropIfUnderSudo();
        return MachinesFile.Deserialize(File.ReadAllText(file)).Select(m => new EphemeralMachine(m, owned: false)).ToList();
    }

    /// <summary>
    /// Without ContainerTest: the machines NspawnUp left running for the tests' project, which the build named in the
    /// tests' runtime settings. They are reached through their agents, as the user: no root needed.
    /// </summary>
    private static IReadOnlyList<EphemeralMachine> UpMachinesOfProject()
    {
        const string how = "Run them with 'sudo dotnet build -t:ContainerTest' (or 'sudo dotnet test' with NspawnOnTest=true), or, for runs without sudo (dotnet test, your IDE), "
                           + "start machines that stay up first: 'sudo dotnet build -t:NspawnUp' in the test project.";
        var upFile = AppContext.GetData(UpMachines.AppContextKey) as string;
        if (string.IsNullOrEmpty(upFile) || !File.Exists(upFile))
            throw new InvalidOperationException($"No machine was started for these tests: NSPAWN_MACHINES_FILE is not set, and the project has no up machines. {how}");
        var machines = MachinesFile.Deserialize(File.ReadAllText(upFile));
        if (machines.Count == 0 || machines.Any(m => !ProcessInfo.IsRunning(m.LeaderPid, m.LeaderStartTime)))
            throw new InvalidOperationException($"The machines NspawnUp started for this project ({upFile}) are no longer running (stopped, or the host restarted). {how}");
        return machines.Select(m => new EphemeralMachine(m, owned: false)).ToList();
    }

    /// <summary>The machine ContainerTest started under this logical name (an NspawnMachine item), or the first one.</summary>
    public static EphemeralMachine FromEnvironment(string? name = null)
    {
        var all = AllFromEnvironment();
        return (name is null ? all.FirstOrDefault() : all.FirstOrDefault(m => m.LogicalName == name))
            ?? throw new InvalidOperationException($"No machine named '{name}' was started; there are: {string.Join(", ", all.Select(m => m.LogicalName))}. Declare it as an NspawnMachine item.");
    }

    /// <summary>
    /// Boots a machine of the test's own (the seed's Chroot.create), by default from the image of the machine
    /// ContainerTest started; stop it with DisposeAsync. With NspawnPoolSize, a request like the pool's machines
    /// (that image, no other options) takes one the build booted ahead, which no other test gets.
    /// </summary>
    public static async Task<EphemeralMachine> StartAsync(StartOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new StartOptions();
        // Under sudo the process may have dropped to the user already: it regains root for the boot.
        if (!Privilege.IsRoot && !ProcessPrivileges.Current.UnderSudo)
            throw new InvalidOperationException(
                "EphemeralMachine.StartAsync boots a machine, which needs root: this test process is not root. Run tests that start machines of their own with 'sudo dotnet build -t:ContainerTest'; up machines (NspawnUp) serve FromEnvironment() and AllFromEnvironment().");
        // ContainerTest's machine, when there is one, gives the image, the stop timeout and the network that the project set.
        var file = Environment.GetEnvironmentVariable("NSPAWN_MACHINES_FILE") is { Length: > 0 } f && File.Exists(f) ? f : null;
        var model = file is not null ? FromEnvironment() : null;
        var (buildNetwork, privateNetwork) = file is not null ? MachinesFile.DeserializeNetwork(File.ReadAllText(file)) : (Settings.Network.Default, null);
        var network = options.Network ?? buildNetwork;
        if (network == NetworkMode.Private && privateNetwork is null)
            throw new InvalidOperationException(
                "StartOptions.Network is Private, but ContainerTest's machines have no private network to join. Set NspawnNetwork to 'private' in the project, or choose another StartOptions.Network.");
        var dir = Path.GetFullPath(options.ImageDir ?? (model ?? FromEnvironment()).ImageDir);
        var launch = OwnLaunch(options, model?._machine, dir, network, privateNetwork);
        ProcessPrivileges.Current.DropIfUnderSudo();
        var pool = Environment.GetEnvironmentVariable(PoolDir.Variable);
        var pooled = await PoolClient.TryTakeAsync(options, dir, launch.BootTimeout, cancellationToken);
        EphemeralMachine started;
        using (ProcessPrivileges.Current.Root())
        {
            // A pool's machine answers to the name the test gave.
            started = pooled is null
                ? new EphemeralMachine(await MachineLauncher.StartAsync(launch, cancellationToken), owned: true)
                : new EphemeralMachine(pooled with { LogicalName = launch.LogicalName }, owned: true, pool);
            // Read from the console's start: the boot's lines come first.
            if (options.OnConsole is { } onConsole)
                started._console = ConsoleFollower.Start(started._machine, onConsole);
        }
        Owned[started.Name] = started;
        return started;
    }

    /// <summary>
    /// How a test's own machine starts: what the test asked for, else what ContainerTest's machine (<paramref name="model"/>)
    /// was started with (the project's boot and stop timeouts, launcher, mode, user namespace), else the defaults.
    /// </summary>
    internal static LaunchOptions OwnLaunch(StartOptions options, Machine? model, string imageDir, NetworkMode network, PrivateNetwork? privateNetwork) =>
        new(Validate.MachineName(options.LogicalName, "LogicalName"), imageDir)
        {
            BootTimeout = options.BootTimeout ?? model?.BootTimeout ?? Settings.BootTimeout.Default,
            StopTimeout = options.StopTimeout ?? model?.StopTimeout ?? Settings.StopTimeout.Default,
            // The project's launcher: a machine in a unit of the host's systemd has one.
            UseSystemdRun = model is null ? Settings.Launcher.Default : model.Unit is not null,
            // A snapshot machine has its snapshot; an overlay machine has none.
            Mode = options.Mode ?? (model is null ? EphemeralModeResolver.Resolve("auto", Path.GetDirectoryName(imageDir)!, "")
                : model.Snapshot is null ? EphemeralMode.Overlay : EphemeralMode.Snapshot),
            Network = network,
            PrivateNetwork = network == NetworkMode.Private ? privateNetwork : null,
            Binds = options.Binds.Select(ToBindMount).ToList(),
            ExtraArguments = options.NspawnArguments,
            PrivateUsers = options.PrivateUsers ?? (model is null ? Settings.PrivateUsers.Default : model.UidShift is not null),
            // The test's own output folder, for InvokeAsync.
            CodeDir = AppContext.BaseDirectory,
        };

    /// <summary>A bind as the core takes it: an absolute host path and an absolute path in the machine (its existence is checked at start).</summary>
    private static BindMount ToBindMount(Bind bind)
    {
        if (string.IsNullOrWhiteSpace(bind.Source) || !Path.IsPathRooted(bind.Source) || bind.Source.Contains('\0'))
            throw new NspawnException(ErrorCodes.BadPath, $"The bind source '{bind.Source}' is not an absolute host path. Give a full path, such as '/srv/data'.");
        var source = Path.GetFullPath(bind.Source) is { Length: > 1 } full ? full.TrimEnd('/') : "/";
        var destination = bind.Destination ?? source;
        if (!destination.StartsWith('/') || destination.Split('/').Contains("..") || destination.Contains('\0'))
            throw new NspawnException(ErrorCodes.BadPath, $"The bind destination '{bind.Destination}' of '{bind.Source}' is not an absolute path in the machine. Give one such as '/opt/app'.");
        return new BindMount(source, destination.Length > 1 ? destination.TrimEnd('/') : destination, bind.ReadOnly);
    }

    /// <summary>Runs a command in the machine; its exit code is in the result.</summary>
    public async Task<ExecResult> ExecAsync(IReadOnlyList<string> command, ExecOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ExecOptions();
        // Through the agent, without a callback: the text straight from its frames.
        if (Agent is not null && options.OnOutput is null)
            return await Agent.ExecCapturedAsync(command, options, options.StandardInput is null ? PipeSource.Null : PipeSource.FromString(options.StandardInput),
                options.Timeout, cancellationToken);
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        // Both streams are read at once; the test's callback (often a List's Add) gets one line at a time.
        var gate = new object();
        Action<string>? onOutput = options.OnOutput is { } given ? line => { lock (gate) given(line); } : null;
        PipeTarget Target(StringBuilder sb) => onOutput is not null
            ? PipeTarget.Merge(PipeTarget.ToStringBuilder(sb), PipeTarget.ToDelegate(onOutput))
            : PipeTarget.ToStringBuilder(sb);
        var input = options.StandardInput is null ? PipeSource.Null : PipeSource.FromString(options.StandardInput);
        var exitCode = await RunUnitAsync(command, options, input, Target(stdout), Target(stderr), cancellationToken);
        return new ExecResult(exitCode, stdout.ToString(), stderr.ToString());
    }

    public Task<ExecResult> ExecAsync(params string[] command) => ExecAsync(command, null);

    /// <summary>Runs a command in the machine and throws <see cref="ExecException"/>, with both streams, when it fails.</summary>
    public async Task<ExecResult> ExecCheckedAsync(IReadOnlyList<string> command, ExecOptions? options = null, CancellationToken cancellationToken = default)
    {
        var result = await ExecAsync(command, options, cancellationToken);
        return result.ExitCode == 0 ? result : throw new ExecException(command, result);
    }

    public Task<ExecResult> ExecCheckedAsync(params string[] command) => ExecCheckedAsync(command, null);

    /// <summary>
    /// The lines of the guest's journal (its journalctl, run in it as a command is), as text with precise timestamps:
    /// since <paramref name="since"/> (for example the start of a test) and of <paramref name="unit"/> only, when given.
    /// Everything logged before the call is in it: journald is made to take in what it had not read yet.
    /// </summary>
    public async Task<IReadOnlyList<string>> GetJournalAsync(DateTimeOffset? since = null, string? unit = null, CancellationToken cancellationToken = default)
    {
        var limit = new ExecOptions { Timeout = TimeSpan.FromMinutes(1) };
        // Best effort: a guest whose journald is stopped still has its journal files to read.
        await ExecAsync(GuestCommand.JournalSync, limit, cancellationToken);
        var result = await ExecCheckedAsync(GuestCommand.Journal(since, unit), limit, cancellationToken);
        return result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>
    /// Copies a host file or folder into a folder of the machine, keeping its name, modes and (numeric) owners.
    /// The machine's tar unpacks it as a unit of the machine's systemd.
    /// </summary>
    public async Task CopyToAsync(string hostPath, string machineDirectory, CancellationToken cancellationToken = default)
    {
        var full = Path.GetFullPath(hostPath);
        var packErrors = new StringBuilder();
        var unpackErrors = new StringBuilder();
        var pack = Cli.Wrap("tar").WithArguments(["-C", Path.GetDirectoryName(full)!, "-cf", "-", "--", Path.GetFileName(full)])
            .WithStandardErrorPipe(PipeTarget.ToStringBuilder(packErrors)).WithValidation(CommandResultValidation.None);
        int exitCode;
        // Root for the whole transfer: the host's tar starts only once the machine's side runs.
        using (ProcessPrivileges.Current.Root())
            exitCode = await RunUnitAsync(["tar", "-C", machineDirectory, "-xpf", "-", "--numeric-owner"], new ExecOptions { Timeout = TransferLimit },
                PipeSource.FromCommand(pack), PipeTarget.Null, PipeTarget.ToStringBuilder(unpackErrors), cancellationToken);
        var errors = (packErrors.ToString() + unpackErrors).Trim();
        if (exitCode != 0 || errors.Contains("tar:"))
            throw new IOException($"Could not copy {hostPath} to {Name}:{machineDirectory}: {errors}");
    }

    /// <summary>
    /// Copies a file or folder of the machine into a host folder, keeping its name and modes. What the machine
    /// sends is not trusted: every file lands owned by the sudo user (or the calling user), without setuid or
    /// setgid bits, inside <paramref name="hostDirectory"/>, and no symbolic link is followed while writing;
    /// device files, FIFOs, entries below a symbolic link and symbolic links that lead out of the copied tree
    /// are refused (IOException).
    /// </summary>
    public async Task CopyFromAsync(string machinePath, string hostDirectory, CancellationToken cancellationToken = default)
    {
        var name = Path.GetFileName(machinePath.TrimEnd('/'));
        if (!machinePath.StartsWith('/') || name.Length == 0)
            throw new ArgumentException($"'{machinePath}' is not an absolute path of a file or folder in the machine.", nameof(machinePath));
        var (uid, gid) = ProcessPrivileges.Current.Caller;
        using var target = RootedFile.OpenRoot(Path.GetFullPath(hostDirectory));
        Exception? refused = null;
        var unpack = PipeTarget.Create(async (stream, token) =>
        {
            try
            {
                await CopyOut.ExtractAsync(stream, target, name, uid, gid, token);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // A refused entry, or an archive that is not one: reported once the machine's side has ended.
                refused = e;
            }
            // The rest is read and dropped, so that the machine's tar ends.
            await stream.CopyToAsync(Stream.Null, token);
        });
        var stderr = new StringBuilder();
        var exitCode = await RunUnitAsync(["tar", "-C", Path.GetDirectoryName(machinePath.TrimEnd('/'))!, "-cf", "-", "--", name],
            new ExecOptions { Timeout = TransferLimit }, PipeSource.Null, unpack, PipeTarget.ToStringBuilder(stderr), cancellationToken);
        if (refused is not null)
            throw new IOException($"Could not copy {Name}:{machinePath} to {hostDirectory}: {refused.Message}", refused);
        if (exitCode != 0 || stderr.ToString().Contains("tar:"))
            throw new IOException($"Could not copy {Name}:{machinePath} to {hostDirectory}: {stderr.ToString().Trim()}");
    }

    /// <summary>A regular file of the machine, read by the host through the machine's root: no program of the machine runs.</summary>
    public async Task<byte[]> ReadFileAsync(string path, CancellationToken cancellationToken = default)
    {
        if (Agent is not null)
            return await Agent.ReadFileAsync(path, cancellationToken);
        using var content = new MemoryStream();
        FileStream file;
        using (ProcessPrivileges.Current.Root())
        using (var root = OpenMachineRoot())
            file = RootedFile.OpenRead(root, path);
        await using (file)
            await file.CopyToAsync(content, cancellationToken);
        return content.ToArray();
    }

    public async Task<string> ReadAllTextAsync(string path, CancellationToken cancellationToken = default) =>
        Encoding.UTF8.GetString(await ReadFileAsync(path, cancellationToken));

    /// <summary>
    /// Writes a regular file in the machine with the given mode and owner (names or numbers of the machine's
    /// users), making missing folders; written by the host through the machine's root: no program of the machine runs.
    /// </summary>
    public async Task WriteFileAsync(string path, byte[] content, UnixFileMode mode = (UnixFileMode)0b110_100_100,
        string owner = "root", string group = "root", CancellationToken cancellationToken = default)
    {
        if (!path.StartsWith('/') || path.EndsWith('/'))
            throw new ArgumentException($"'{path}' is not an absolute path of a file in the machine.", nameof(path));
        if (Agent is not null)
        {
            await Agent.WriteFileAsync(path, content, mode, owner, group, cancellationToken);
            return;
        }
        using (ProcessPrivileges.Current.Root())
        using (var root = OpenMachineRoot())
        {
            // In a user namespace the guest's IDs are host IDs from its shift on, and new files are made as the guest's root.
            var shift = _machine.UidShift ?? 0;
            var (uid, gid) = (shift + MachineAccounts.UserId(root, owner), shift + MachineAccounts.GroupId(root, group));
            var creator = _machine.UidShift;
            if (Path.GetDirectoryName(path) is { Length: > 1 } folder)
                RootedFile.CreateDirectory(root, folder, (UnixFileMode)0b111_101_101, shift, shift, createAs: creator);
            await using var file = RootedFile.OpenWrite(root, path, mode, uid, gid, createAs: creator);
            await file.WriteAsync(content, cancellationToken);
        }
    }

    public Task WriteAllTextAsync(string path, string text, UnixFileMode mode = (UnixFileMode)0b110_100_100,
        string owner = "root", string group = "root", CancellationToken cancellationToken = default) =>
        WriteFileAsync(path, Encoding.UTF8.GetBytes(text), mode, owner, group, cancellationToken);

    /// <summary>Waits until a unit is active; throws when it failed, or TimeoutException after <paramref name="timeout"/> (60 s by default).</summary>
    public async Task WaitForUnitAsync(string unit, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        var deadline = DateTime.UtcNow + limit;
        TimeSpan Left() => TimeSpan.FromTicks(Math.Max((deadline - DateTime.UtcNow).Ticks, TimeSpan.FromSeconds(1).Ticks));
        while (true)
        {
            var state = (await SystemctlAsync(["is-active", unit], Left(), cancellationToken)).StandardOutput.Trim();
            if (state == "active")
                return;
            if (state == "failed")
            {
                var status = await SystemctlAsync(["status", "--no-pager", "--lines=20", unit], Left(), cancellationToken);
                throw new InvalidOperationException($"Unit {unit} failed in machine {Name}:\n{status.StandardOutput.Trim()}");
            }
            if (DateTime.UtcNow >= deadline)
                throw new TimeoutException($"Unit {unit} in machine {Name} is still '{state}' after {limit.TotalSeconds:0.#} s.");
            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>
    /// Waits (up to <paramref name="timeout"/>, 60 s by default) until the machine's systemd has finished
    /// starting, and tells whether it runs: 'running', or 'degraded' (a unit failed) when <paramref name="degradedIsRunning"/>.
    /// </summary>
    public async Task<bool> IsSystemRunningAsync(TimeSpan? timeout = null, bool degradedIsRunning = true, CancellationToken cancellationToken = default)
    {
        var result = await ExecAsync(["systemctl", "is-system-running", "--wait"], new ExecOptions { Timeout = timeout ?? TimeSpan.FromSeconds(60) }, cancellationToken);
        var state = result.StandardOutput.Trim();
        return state == "running" || (degradedIsRunning && state == "degraded");
    }

    /// <summary>
    /// Calls a public static method inside the machine and returns its result: <c>await machine.InvokeAsync(() => Provisioner.Apply(config))</c>.
    /// The arguments are evaluated here and sent as JSON; the machine's agent loads the method's assembly (and its
    /// dependencies) from the tests' output folder, which the machine has read-only at the same path. What the method
    /// throws comes back as <see cref="GuestException"/>. Past <paramref name="timeout"/> (5 minutes by default)
    /// TimeoutException is thrown; the method itself cannot be stopped and runs on until it returns or the machine stops.
    /// </summary>
    public async Task<T> InvokeAsync<T>(Expression<Func<T>> call, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        InvokeCall.Result<T>(await InvokeCoreAsync(call, timeout, cancellationToken), call.Body.ToString());

    /// <summary>Calls a public static async method inside the machine and returns its result (see <see cref="InvokeAsync{T}(Expression{Func{T}}, TimeSpan?, CancellationToken)"/>).</summary>
    public async Task<T> InvokeAsync<T>(Expression<Func<Task<T>>> call, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        InvokeCall.Result<T>(await InvokeCoreAsync(call, timeout, cancellationToken), call.Body.ToString());

    /// <summary>Calls a public static method that returns nothing inside the machine.</summary>
    public Task InvokeAsync(Expression<Action> call, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        InvokeCoreAsync(call, timeout, cancellationToken);

    /// <summary>Calls a public static async method that returns a Task inside the machine.</summary>
    public Task InvokeAsync(Expression<Func<Task>> call, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        InvokeCoreAsync(call, timeout, cancellationToken);

    private async Task<string?> InvokeCoreAsync(LambdaExpression call, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var request = InvokeCall.From(call, _machine.CodeDir);
        if (Agent is null)
            throw new InvalidOperationException($"InvokeAsync needs the machine's agent, which does not run in machine {Name}: {_machine.AgentProblem}.{await AgentStatusAsync()}");
        return await Agent.InvokeAsync(request, timeout ?? HostCommand.DefaultLimit, cancellationToken);
    }

    /// <summary>What the guest's systemd says of the agent's unit (for example, a runtime that cannot run there).</summary>
    private async Task<string> AgentStatusAsync()
    {
        try
        {
            var status = await SystemctlAsync(["status", "--no-pager", "--lines=10", AgentSetup.UnitName], TimeSpan.FromSeconds(10), CancellationToken.None);
            return "\n" + status.StandardOutput.Trim();
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or NspawnException)
        {
            return "";
        }
    }

    /// <summary>
    /// Stops a machine this process started; a machine from the environment is left to the targets. One from the warm
    /// pool goes back to it and is stopped there, while the test goes on.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (!IsOwned || !Owned.TryRemove(Name, out _))
            return;
        using (ProcessPrivileges.Current.Root())
        {
            if (_poolDir is null || !PoolDir.Return(_poolDir, Name))
            {
                await MachineLauncher.StopAsync(_machine, cancellationToken);
                var privileges = ProcessPrivileges.Current;
                Ownership.ReturnBinds(privileges.UnderSudo ? (privileges.UserId!.Value, privileges.GroupId!.Value) : null, [_machine], Path.GetDirectoryName(ImageDir));
            }
        }
        if (_console is not null)
            await _console.StopAsync();
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    public override string ToString() => $"{LogicalName} ({Name}, {(Address is null ? "" : $"address {Address}, ")}leader PID {LeaderPid})";

    /// <summary>
    /// The command line of a command run as a transient unit of the guest's systemd: through machined where
    /// the machine is registered (no program of the guest runs on the host), else the guest's systemd-run in
    /// the machine, confined as the guest is (<see cref="GuestCommand"/>).
    /// </summary>
    internal static IReadOnlyList<string> ExecArguments(Machine machine, string unit, IReadOnlyList<string> command, ExecOptions options) =>
        GuestCommand.AsUnit(machine, unit, command, options.User, options.WorkingDirectory, options.Environment, options.Timeout);

    /// <summary>The command line of systemctl for the machine's systemd: the host's through machined, else the guest's, confined.</summary>
    internal static IReadOnlyList<string> SystemctlArguments(Machine machine, IReadOnlyList<string> args) =>
        machine.Unit is not null
            ? [ToolLocator.Require(Tool.Systemctl), $"--machine={machine.Name}", .. args]
            : throw GuestCommand.NoChannel(machine);

    /// <summary>
    /// Runs <paramref name="command"/> as a transient unit of the machine. Past <see cref="ExecOptions.Timeout"/>
    /// the unit is stopped, which kills all it started there, and TimeoutException says so.
    /// </summary>
    private async Task<int> RunUnitAsync(IReadOnlyList<string> command, ExecOptions options, PipeSource input, PipeTarget output, PipeTarget error,
        CancellationToken cancellationToken)
    {
        if (Agent is not null)
            return await Agent.ExecAsync(command, options, input, output, error, options.Timeout, cancellationToken);
        var unit = $"nspawn-exec-{Guid.NewGuid():N}"[..24];
        var argv = ExecArguments(_machine, unit, command, options);
        using var forceful = new CancellationTokenSource();
        CommandTask<CommandResult> running;
        using (ProcessPrivileges.Current.Root())
            running = Cli.Wrap(argv[0]).WithArguments(argv.Skip(1))
                .WithStandardInputPipe(input).WithStandardOutputPipe(output).WithStandardErrorPipe(error)
                .WithValidation(CommandResultValidation.None)
                .ExecuteAsync(forceful.Token);

        var limit = Task.Delay(options.Timeout ?? Timeout.InfiniteTimeSpan, cancellationToken);
        if (await Task.WhenAny(running.Task, limit) == running.Task)
            return (await running).ExitCode;
        // Stopping the unit kills the command and all it started inside the machine; then systemd-run returns.
        try
        {
            await SystemctlAsync(["stop", unit + ".service"], _machine.StopTimeout, CancellationToken.None);
        }
        catch (TimeoutException)
        {
            // The unit's RuntimeMaxSec ends it in the machine.
        }
        forceful.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            await running;
        }
        catch (OperationCanceledException)
        {
        }
        cancellationToken.ThrowIfCancellationRequested();
        throw new TimeoutException($"'{string.Join(' ', command)}' did not finish within {options.Timeout!.Value.TotalSeconds:0.#} s in machine {Name}; it was killed there.");
    }

    /// <summary>systemctl of the machine with a time limit: a guest that does not answer cannot hang a test.</summary>
    private async Task<ExecResult> SystemctlAsync(IReadOnlyList<string> args, TimeSpan limit, CancellationToken cancellationToken)
    {
        if (Agent is not null)
            return await ExecAsync(["systemctl", .. args], new ExecOptions { Timeout = limit }, cancellationToken);
        var argv = SystemctlArguments(_machine, args);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit);
        CommandTask<BufferedCommandResult> running;
        using (ProcessPrivileges.Current.Root())
            running = Cli.Wrap(argv[0]).WithArguments(argv.Skip(1)).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(timeout.Token);
        try
        {
            var result = await running;
            return new ExecResult(result.ExitCode, result.StandardOutput, result.StandardError);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"'systemctl {string.Join(' ', args)}' did not finish within {limit.TotalSeconds:0.#} s in machine {Name} and was killed.");
        }
    }

    /// <summary>The machine's root folder, held open; checked to be the machine's own (not a reused PID's) once open.</summary>
    private SafeFileHandle OpenMachineRoot()
    {
        var root = RootedFile.OpenRoot($"/proc/{_machine.LeaderPid}/root");
        if (ProcessInfo.IsRunning(_machine.LeaderPid, _machine.LeaderStartTime))
            return root;
        root.Dispose();
        throw new InvalidOperationException($"Machine {Name} is not running: its leader (PID {LeaderPid}) is gone.");
    }
}
