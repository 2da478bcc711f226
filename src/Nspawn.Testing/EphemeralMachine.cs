using System.Collections.Concurrent;
using System.Formats.Tar;
using System.Text;
using CliWrap;
using CliWrap.Buffered;
using Nspawn.Build;

namespace Nspawn.Testing;

/// <summary>
/// A running machine, for tests: the one ContainerTest started (<see cref="FromEnvironment"/>) or one of
/// the test's own (<see cref="StartAsync"/>). Commands run as
/// transient units of the guest's systemd, so that a timeout kills all they started, and whatever they
/// leave running dies with the machine.
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

    private readonly Machine _machine;

    private EphemeralMachine(Machine machine, bool owned)
    {
        _machine = machine;
        IsOwned = owned;
    }

    public string Name => _machine.Name;
    public string LogicalName => _machine.LogicalName;
    public string Image => _machine.Image;
    public string ImageDir => _machine.ImageDir;
    public int LeaderPid => _machine.LeaderPid;
    /// <summary>How long <see cref="StopAsync"/> waits for the guest to power off before it kills it.</summary>
    public TimeSpan StopTimeout => _machine.StopTimeout;
    /// <summary>Started by this process, and so stopped by <see cref="StopAsync"/>; a machine from the environment is left to the targets.</summary>
    public bool IsOwned { get; }

    /// <summary>Every machine ContainerTest started for these tests.</summary>
    public static IReadOnlyList<EphemeralMachine> AllFromEnvironment()
    {
        var file = Environment.GetEnvironmentVariable("NSPAWN_MACHINES_FILE");
        if (string.IsNullOrEmpty(file))
            throw new InvalidOperationException(
                "NSPAWN_MACHINES_FILE is not set, so no machine was started for these tests. Run them with 'sudo dotnet build -t:ContainerTest' (or 'sudo dotnet test' with NspawnOnTest=true) in a project that references Nspawn.Build.");
        if (!File.Exists(file))
            throw new InvalidOperationException($"NSPAWN_MACHINES_FILE names '{file}', which does not exist: the machines were stopped already.");
        ProcessPrivileges.Current.DropIfUnderSudo();
        return MachinesFile.Deserialize(File.ReadAllText(file)).Select(m => new EphemeralMachine(m, owned: false)).ToList();
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
    /// ContainerTest started; stop it with DisposeAsync.
    /// </summary>
    public static async Task<EphemeralMachine> StartAsync(StartOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new StartOptions();
        // ContainerTest's machine, when there is one, gives the image and the stop timeout that the project set.
        var model = Environment.GetEnvironmentVariable("NSPAWN_MACHINES_FILE") is { Length: > 0 } file && File.Exists(file) ? FromEnvironment() : null;
        var dir = Path.GetFullPath(options.ImageDir ?? (model ?? FromEnvironment()).ImageDir);
        var launch = new LaunchOptions(Validate.MachineName(options.LogicalName, "LogicalName"), dir)
        {
            BootTimeout = options.BootTimeout ?? Defaults.BootTimeout,
            StopTimeout = options.StopTimeout ?? model?._machine.StopTimeout ?? Defaults.StopTimeout,
            UseSystemdRun = LaunchOptions.HostHasSystemd,
            Mode = options.Mode ?? EphemeralModeResolver.Resolve("auto", Path.GetDirectoryName(dir)!, ""),
            ExtraArguments = options.NspawnArguments,
        };
        ProcessPrivileges.Current.DropIfUnderSudo();
        Machine machine;
        using (ProcessPrivileges.Current.Root())
            machine = await MachineLauncher.StartAsync(launch, cancellationToken);
        var started = new EphemeralMachine(machine, owned: true);
        Owned[machine.Name] = started;
        return started;
    }

    /// <summary>Runs a command in the machine; its exit code is in the result.</summary>
    public async Task<ExecResult> ExecAsync(IReadOnlyList<string> command, ExecOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ExecOptions();
        var unit = $"nspawn-exec-{Guid.NewGuid():N}"[..24];
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        PipeTarget Target(StringBuilder sb) => options.OnOutput is { } onOutput
            ? PipeTarget.Merge(PipeTarget.ToStringBuilder(sb), PipeTarget.ToDelegate(onOutput))
            : PipeTarget.ToStringBuilder(sb);

        var argv = ExecArguments(_machine, unit, command, options);
        using var forceful = new CancellationTokenSource();
        CommandTask<CommandResult> running;
        using (ProcessPrivileges.Current.Root())
            running = Cli.Wrap(argv[0]).WithArguments(argv.Skip(1))
                .WithStandardInputPipe(options.StandardInput is null ? PipeSource.Null : PipeSource.FromString(options.StandardInput))
                .WithStandardOutputPipe(Target(stdout))
                .WithStandardErrorPipe(Target(stderr))
                .WithValidation(CommandResultValidation.None)
                .ExecuteAsync(forceful.Token);

        var limit = Task.Delay(options.Timeout ?? Timeout.InfiniteTimeSpan, cancellationToken);
        if (await Task.WhenAny(running.Task, limit) != running.Task)
        {
            // Stopping the unit kills the command and all it started inside the machine; then systemd-run returns.
            await RunAsync(MachineCommand(_machine, ["systemctl", "stop", unit + ".service"]), CancellationToken.None);
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
        var result = await running;
        return new ExecResult(result.ExitCode, stdout.ToString(), stderr.ToString());
    }

    public Task<ExecResult> ExecAsync(params string[] command) => ExecAsync(command, null);

    /// <summary>Runs a command in the machine and throws <see cref="ExecException"/>, with both streams, when it fails.</summary>
    public async Task<ExecResult> ExecCheckedAsync(IReadOnlyList<string> command, ExecOptions? options = null, CancellationToken cancellationToken = default)
    {
        var result = await ExecAsync(command, options, cancellationToken);
        return result.ExitCode == 0 ? result : throw new ExecException(command, result);
    }

    public Task<ExecResult> ExecCheckedAsync(params string[] command) => ExecCheckedAsync(command, null);

    /// <summary>Copies a host file or folder into a folder of the machine, keeping its name, modes and (numeric) owners.</summary>
    public Task CopyToAsync(string hostPath, string machineDirectory, CancellationToken cancellationToken = default)
    {
        var full = Path.GetFullPath(hostPath);
        var pack = Cli.Wrap("tar").WithArguments(["-C", Path.GetDirectoryName(full)!, "-cf", "-", "--", Path.GetFileName(full)]);
        var unpack = Command(MachineCommand(_machine, ["tar", "-C", machineDirectory, "-xpf", "-", "--numeric-owner"]));
        return PipeAsync(pack, unpack, $"copy {hostPath} to {Name}:{machineDirectory}", cancellationToken);
    }

    /// <summary>Copies a file or folder of the machine into a host folder, keeping its name, modes and (numeric) owners.</summary>
    public Task CopyFromAsync(string machinePath, string hostDirectory, CancellationToken cancellationToken = default)
    {
        var pack = Command(MachineCommand(_machine, ["tar", "-C", Path.GetDirectoryName(machinePath)!, "-cf", "-", "--", Path.GetFileName(machinePath)]));
        var unpack = Cli.Wrap("tar").WithArguments(["-C", Path.GetFullPath(hostDirectory), "-xpf", "-", "--numeric-owner"]);
        return PipeAsync(pack, unpack, $"copy {Name}:{machinePath} to {hostDirectory}", cancellationToken);
    }

    public async Task<byte[]> ReadFileAsync(string path, CancellationToken cancellationToken = default)
    {
        using var content = new MemoryStream();
        await InMachineAsync(["cat", "--", path], PipeSource.Null, PipeTarget.ToStream(content), $"read {Name}:{path}", cancellationToken);
        return content.ToArray();
    }

    public async Task<string> ReadAllTextAsync(string path, CancellationToken cancellationToken = default) =>
        Encoding.UTF8.GetString(await ReadFileAsync(path, cancellationToken));

    /// <summary>Writes a file in the machine with the given mode and owner (names of the machine's users).</summary>
    public async Task WriteFileAsync(string path, byte[] content, UnixFileMode mode = (UnixFileMode)0b110_100_100,
        string owner = "root", string group = "root", CancellationToken cancellationToken = default)
    {
        if (!path.StartsWith('/'))
            throw new ArgumentException($"'{path}' is not an absolute path in the machine.", nameof(path));
        // A one-file tar archive carries the mode and owner; tar in the machine resolves the names there.
        using var archive = new MemoryStream();
        await using (var writer = new TarWriter(archive, TarEntryFormat.Ustar, leaveOpen: true))
        {
            var entry = new UstarTarEntry(TarEntryType.RegularFile, path.TrimStart('/'))
            {
                Mode = mode, UserName = owner, GroupName = group, ModificationTime = DateTimeOffset.UtcNow,
                DataStream = new MemoryStream(content),
            };
            await writer.WriteEntryAsync(entry, cancellationToken);
        }
        await InMachineAsync(["tar", "-C", "/", "-xpf", "-"], PipeSource.FromBytes(archive.ToArray()), PipeTarget.ToStream(Stream.Null), $"write {Name}:{path}", cancellationToken);
    }

    public Task WriteAllTextAsync(string path, string text, UnixFileMode mode = (UnixFileMode)0b110_100_100,
        string owner = "root", string group = "root", CancellationToken cancellationToken = default) =>
        WriteFileAsync(path, Encoding.UTF8.GetBytes(text), mode, owner, group, cancellationToken);

    /// <summary>Waits until a unit is active; throws when it failed, or TimeoutException after <paramref name="timeout"/> (60 s by default).</summary>
    public async Task WaitForUnitAsync(string unit, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var state = (await RunAsync(MachineCommand(_machine, ["systemctl", "is-active", unit]), cancellationToken)).StandardOutput.Trim();
            if (state == "active")
                return;
            if (state == "failed")
            {
                var status = await RunAsync(MachineCommand(_machine, ["systemctl", "status", "--no-pager", "--lines=20", unit]), cancellationToken);
                throw new InvalidOperationException($"Unit {unit} failed in machine {Name}:\n{status.StandardOutput.Trim()}");
            }
            if (DateTime.UtcNow >= deadline)
                throw new TimeoutException($"Unit {unit} in machine {Name} is still '{state}' after {(timeout ?? TimeSpan.FromSeconds(60)).TotalSeconds:0.#} s.");
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

    /// <summary>Stops a machine this process started; a machine from the environment is left to the targets.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (!IsOwned || !Owned.TryRemove(Name, out _))
            return;
        using (ProcessPrivileges.Current.Root())
            await MachineLauncher.StopAsync(_machine, cancellationToken);
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    public override string ToString() => $"{LogicalName} ({Name}, leader PID {LeaderPid})";

    /// <summary>
    /// The command line of a command run as a transient unit of the guest's systemd: through machined
    /// where the machine is registered, else in the machine's namespaces through nsenter.
    /// </summary>
    internal static IReadOnlyList<string> ExecArguments(Machine machine, string unit, IReadOnlyList<string> command, ExecOptions options)
    {
        if (command.Count == 0)
            throw new ArgumentException("The command is empty.", nameof(command));
        var run = new List<string> { "--wait", "--pipe", "--quiet", "--collect", "--service-type=exec", $"--unit={unit}" };
        if (options.User is { } user)
            run.Add($"--uid={user}");
        if (options.WorkingDirectory is { } cwd)
            run.Add($"--working-directory={cwd}");
        foreach (var (name, value) in options.Environment ?? new Dictionary<string, string>())
        {
            if (name.Length == 0 || name.Contains('='))
                throw new ArgumentException($"'{name}' is not an environment variable name.", nameof(options));
            run.Add($"--setenv={name}={value}");
        }
        if (options.Timeout is { } timeout)
            // A backstop inside the machine, should this process die before it stops the unit itself.
            run.Add($"--property=RuntimeMaxSec={Math.Ceiling(timeout.TotalSeconds) + 5}");
        run.Add("--");
        run.AddRange(command);
        return machine.Unit is not null
            ? ["systemd-run", $"--machine={machine.Name}", .. run]
            : MachineCommand(machine, ["systemd-run", .. run]);
    }

    /// <summary>A command in the machine's namespaces (nsenter on the leader), for control and file transfer.</summary>
    internal static IReadOnlyList<string> MachineCommand(Machine machine, IReadOnlyList<string> command) =>
        ["nsenter", "-t", machine.LeaderPid.ToString(), "-m", "-u", "-i", "-n", "-p", "--", .. command];

    private static Command Command(IReadOnlyList<string> argv) => Cli.Wrap(argv[0]).WithArguments(argv.Skip(1));

    private static async Task<BufferedCommandResult> RunAsync(IReadOnlyList<string> argv, CancellationToken cancellationToken)
    {
        CommandTask<BufferedCommandResult> running;
        using (ProcessPrivileges.Current.Root())
            running = Command(argv).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(cancellationToken);
        return await running;
    }

    /// <summary>A command in the machine's namespaces with the given input and output; throws IOException, with its stderr, when it fails.</summary>
    private async Task InMachineAsync(IReadOnlyList<string> command, PipeSource input, PipeTarget output, string what, CancellationToken cancellationToken)
    {
        var stderr = new StringBuilder();
        CommandTask<CommandResult> running;
        using (ProcessPrivileges.Current.Root())
            running = Command(MachineCommand(_machine, command))
                .WithStandardInputPipe(input)
                .WithStandardOutputPipe(output)
                .WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr))
                .WithValidation(CommandResultValidation.None)
                .ExecuteAsync(cancellationToken);
        if ((await running).ExitCode != 0)
            throw new IOException($"Could not {what}: {stderr.ToString().Trim()}");
    }

    private static async Task PipeAsync(Command from, Command to, string what, CancellationToken cancellationToken)
    {
        var stderr = new StringBuilder();
        CommandResult result;
        // Root for the whole transfer: the first command of a pipe starts only once the second runs.
        using (ProcessPrivileges.Current.Root())
            result = await (from.WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr)).WithValidation(CommandResultValidation.None)
                    | to.WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr)).WithValidation(CommandResultValidation.None))
                .ExecuteAsync(cancellationToken);
        if (result.ExitCode != 0 || stderr.Length > 0 && stderr.ToString().Contains("tar:"))
            throw new IOException($"Could not {what}: {stderr.ToString().Trim()}");
    }
}
