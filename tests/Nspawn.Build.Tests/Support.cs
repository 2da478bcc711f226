using System.IO.Compression;
using System.Security;
using System.Text;

namespace Nspawn.Build.Tests;

public sealed record RunResult(int ExitCode, string Output)
{
    public override string ToString() => $"exit code {ExitCode}:\n{Output}";

    // Assert.Matches shows only the start of the value: a failure must show the whole run to be diagnosed from CI.
    public void AssertMatches(string pattern) =>
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(Output, pattern), $"/{pattern}/ is not in the run's output, {this}");
}

/// <summary>
/// What a run left behind: nspawn processes, snapshots, per-machine cgroups, notify sockets and console files, and
/// of private networks: interfaces with the package's prefix (a bridge and its addresses and routes, or a machine's
/// link), their records, nftables tables and IPv4 forwarding that we turned on.
/// </summary>
public static class Leaks
{
    public static IReadOnlyList<string> Find()
    {
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                if (int.TryParse(Path.GetFileName(dir), out _) && File.ReadAllText(Path.Combine(dir, "comm")).Trim() == "systemd-nspawn"
                    && ProcessInfo.StartTime(int.Parse(Path.GetFileName(dir))) is not null)
                    found.Add("process " + File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' '));
            }
            catch (IOException)
            {
            }
        }
        if (Directory.Exists(Repo.ChrootsDir))
            found.AddRange(Directory.EnumerateFileSystemEntries(Repo.ChrootsDir, ".#machine.*").Select(s => "snapshot " + s));
        if (Directory.Exists(MachineLauncher.StateDir))
        {
            found.AddRange(Directory.EnumerateFiles(MachineLauncher.StateDir, "*.notify").Select(s => "socket " + s));
            found.AddRange(Directory.EnumerateFiles(MachineLauncher.StateDir, "*.console").Select(s => "console file " + s));
            found.AddRange(IdmappedMount.Leftovers().Select(s => "mapped image " + s));
            if (Directory.Exists(UidRange.Dir))
                found.AddRange(Directory.EnumerateFiles(UidRange.Dir).Select(s => "UID range claim " + s));
            if (Directory.Exists(Nspawn.Build.Agent.AgentSetup.AgentsDir))
                found.AddRange(Directory.EnumerateDirectories(Nspawn.Build.Agent.AgentSetup.AgentsDir).Select(s => "agent folder " + s));
        }
        found.AddRange(MachineRegistry.List().Select(r => $"record of {r.Machine.Name} (owner PID {r.OwnerPid})"));
        found.AddRange(MountTable.Read().Where(m => MountTable.IsUnder(m.MountPoint, DeviceMount.Root)).Select(m => "device mount " + m.MountPoint));
        foreach (var hierarchy in Directory.EnumerateDirectories("/sys/fs/cgroup"))
            found.AddRange(Directory.EnumerateDirectories(hierarchy, "nspawn-*", SearchOption.AllDirectories).Select(s => "cgroup " + s));
        found.AddRange(HostLinks.Named(TempNames.BridgePrefix).Select(i => "interface " + i));
        found.AddRange(NetworkRegistry.List().Select(r => $"network record of {r.Network.Bridge} (owner PID {r.OwnerPid})"));
        found.AddRange(NftTables().Where(t => t.Contains(TempNames.BridgePrefix)).Select(t => "nftables " + t));
        if (File.Exists(Path.Combine(NetworkRegistry.Dir, "ip_forward.ours")))
            found.Add("IPv4 forwarding turned on by a network that is gone");
        return found;
    }

    /// <summary>The host's nftables tables ('table ip nsb-1a2b3c'), if nft is installed.</summary>
    public static IReadOnlyList<string> NftTables()
    {
        if (ToolLocator.Find("nft") is not { } nft)
            return [];
        var list = Cli.Wrap(nft).WithArguments(["list", "tables"]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync().GetAwaiter().GetResult();
        return list.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    private static HashSet<string> _before = [];

    /// <summary>What is there before this test run begins (left by an earlier, killed run): only what this run leaves counts.</summary>
    public static void TakeBaseline() => _before = Find().ToHashSet();

    /// <summary>What is there now and was not before this test run (see <see cref="TakeBaseline"/>).</summary>
    public static IReadOnlyList<string> New() => Find().Where(leak => !_before.Contains(leak)).ToList();

    public static void AssertNone()
    {
        var left = New();
        Assert.True(left.Count == 0, "left behind: " + string.Join("; ", left));
    }
}

/// <summary>The host's machine records are everyone's: a test counts only those of machines that came after its baseline.</summary>
internal static class Records
{
    /// <summary>The names of the machines recorded now: a test's baseline.</summary>
    public static HashSet<string> Baseline() => MachineRegistry.List().Select(r => r.Machine.Name).ToHashSet();

    /// <summary>The records of machines that were not there at <paramref name="baseline"/>.</summary>
    public static IReadOnlyList<MachineRecord> Since(HashSet<string> baseline) => MachineRegistry.List().Where(r => !baseline.Contains(r.Machine.Name)).ToList();
}

public static class Shell
{
    /// <summary>Waits until <paramref name="condition"/> holds; false after <paramref name="timeout"/>.</summary>
    public static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                return false;
            await Task.Delay(50);
        }
        return true;
    }

    /// <summary>Waits until <paramref name="condition"/> (a check that takes time of its own) holds; false after <paramref name="timeout"/>.</summary>
    public static async Task<bool> WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                return false;
            await Task.Delay(100);
        }
        return true;
    }

    /// <summary>
    /// The task once it ended; one still running after <paramref name="timeout"/> fails the test. Unlike WaitAsync,
    /// a hang is not a TimeoutException, which is what some calls are expected to throw.
    /// </summary>
    public static async Task EndsWithin(Task task, TimeSpan timeout)
    {
        Assert.True(await Task.WhenAny(task, Task.Delay(timeout)) == task, $"still running after {timeout.TotalSeconds} s");
        await task;
    }

    /// <inheritdoc cref="EndsWithin(Task, TimeSpan)"/>
    public static async Task<T> EndsWithin<T>(Task<T> task, TimeSpan timeout)
    {
        await EndsWithin((Task)task, timeout);
        return await task;
    }

    public static async Task<RunResult> RunAsync(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null, string? workingDir = null)
    {
        var output = new StringBuilder();
        var result = await Cli.Wrap(program).WithArguments(args)
            .WithEnvironmentVariables(SudoInvoker.With(env))
            .WithWorkingDirectory(workingDir ?? Repo.Root)
            .WithStandardOutputPipe(PipeTarget.ToStringBuilder(output))
            .WithStandardErrorPipe(PipeTarget.ToStringBuilder(output))
            .WithValidation(CommandResultValidation.None)
            .ExecuteAsync();
        return new RunResult(result.ExitCode, output.ToString());
    }
}

/// <summary>
/// The package as users get it: packed once per test run with a version of its own, restored by the
/// sample from the local folder feed into a fresh NuGet cache. The first passing ContainerTest run also
/// builds the image that the other tests use. At the end, the loop file system is let go of.
/// </summary>
public sealed class PackageFixture : IAsyncLifetime
{
    /// <summary>How many tests the sample has (tests/Sample).</summary>
    public const int SampleTests = 29;

    public string Version { get; } = $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
    public string NuGetCache { get; } = Directory.CreateTempSubdirectory("nspawn-nuget-").FullName;
    public string PackageDir { get; } = Directory.CreateTempSubdirectory("nspawn-package-").FullName;
    public string Nupkg => Path.Combine(Repo.Root, "artifacts/feed", $"Nspawn.Build.{Version}.nupkg");

    private Task<RunResult>? _firstRun;

    public async Task InitializeAsync()
    {
        Leaks.TakeBaseline();
        var pack = await Shell.RunAsync("dotnet", ["pack", "src/Nspawn.Build", "-c", "Release", $"-p:Version={Version}", "-p:NspawnNativeAgent=true"]);
        Assert.True(pack.ExitCode == 0, pack.ToString());
        ZipFile.ExtractToDirectory(Nupkg, PackageDir);
    }

    /// <summary>The first ContainerTest run of this test run: it builds the image if there is none yet.</summary>
    public Task<RunResult> FirstRunAsync() => _firstRun ??= RunSampleAsync([]);

    /// <summary>The image that the first run builds: for tests that boot machines from it.</summary>
    public async Task RequireImageAsync()
    {
        var first = await FirstRunAsync();
        Assert.True(File.Exists(System.IO.Path.Combine(Repo.ImageDir, ImageBuilder.StampPath)), "no image: " + first);
    }

    /// <summary>dotnet build -t:ContainerTest on the sample, or another dotnet command (such as test) with the same package.</summary>
    public Task<RunResult> RunSampleAsync(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null, string command = "build") =>
        Shell.RunAsync("dotnet", [command, Repo.Sample, .. command == "build" ? ["-t:ContainerTest"] : Array.Empty<string>(), $"-p:NspawnBuildVersion={Version}", .. args],
            new Dictionary<string, string?>(env ?? new Dictionary<string, string?>()) { ["NUGET_PACKAGES"] = NuGetCache });

    /// <summary>
    /// ContainerTest (command build) or plain dotnet test on the project in <paramref name="dir"/>, run from that folder
    /// as a user does: there dotnet test finds the folder's global.json (MTP mode).
    /// </summary>
    public Task<RunResult> RunProjectAsync(string dir, string command, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null) =>
        Shell.RunAsync("dotnet", [command, .. command == "build" ? ["-t:ContainerTest"] : Array.Empty<string>(), $"-p:NspawnBuildVersion={Version}", .. args],
            new Dictionary<string, string?>(env ?? new Dictionary<string, string?>()) { ["NUGET_PACKAGES"] = NuGetCache }, dir);

    public async Task DisposeAsync()
    {
        if (_firstRun is not null)
            await Shell.RunAsync("dotnet", ["msbuild", Repo.Sample, "-t:NspawnUnmount", $"-p:NspawnBuildVersion={Version}"],
                new Dictionary<string, string?> { ["NUGET_PACKAGES"] = NuGetCache });
        Directory.Delete(NuGetCache, recursive: true);
        Directory.Delete(PackageDir, recursive: true);
        File.Delete(Nupkg);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MachinesCollection : ICollectionFixture<PackageFixture>
{
    // Real machines, builds and mounts: one at a time, in one collection, with no other test class running beside
    // them: their leak checks look at the whole host, and some set process-wide environment variables (EnvironmentScope).
    public const string Name = "real machines";
}

/// <summary>
/// A small project that imports the packed package's build files directly (as NuGet does), with empty
/// Build and a VSTest of the test's choosing: ContainerTest on it takes a second or two.
/// </summary>
public sealed class ConsumerProject
{
    public string Path { get; }
    public string Dir { get; }

    public ConsumerProject(PackageFixture package, string dir, string chrootsDir, string items = "", string vstest = "", string properties = "", string name = "consumer", string buildBody = "")
    {
        Dir = dir;
        Path = System.IO.Path.Combine(dir, name + ".proj");
        var build = SecurityElement.Escape(System.IO.Path.Combine(package.PackageDir, "build"));
        File.WriteAllText(Path, $"""
            <Project>
              <Import Project="{build}/Nspawn.Build.props" />
              <PropertyGroup>
                <NspawnChrootsDir>{SecurityElement.Escape(chrootsDir)}</NspawnChrootsDir>
                <IntermediateOutputPath>obj/{name}/</IntermediateOutputPath>
                {properties}
              </PropertyGroup>
              <ItemGroup>{items}</ItemGroup>
              <Import Project="{build}/Nspawn.Build.targets" />
              <Target Name="Build">{buildBody}</Target>
              <Target Name="VSTest">{vstest}</Target>
            </Project>
            """);
    }

    public static string Dotnet => ToolLocator.Find("dotnet") ?? "/usr/share/dotnet/dotnet";

    public IReadOnlyList<string> Command(IEnumerable<string> args) => [Dotnet, "msbuild", Path, "-nologo", .. args];

    public Task<RunResult> RunAsync(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null, string[]? prefix = null)
    {
        var all = (prefix ?? []).Concat(Command(args)).ToArray();
        return Shell.RunAsync(all[0], all.Skip(1), env, Dir);
    }
}

/// <summary>A build running in the background, to be signalled at a chosen moment.</summary>
public sealed class BackgroundRun
{
    private readonly StringBuilder _output = new();
    private readonly CommandTask<CommandResult> _task;

    private BackgroundRun(IReadOnlyList<string> command, IReadOnlyDictionary<string, string?>? env, string? workingDir)
    {
        void Add(string line)
        {
            lock (_output)
                _output.AppendLine(line);
        }
        _task = Cli.Wrap(command[0]).WithArguments(command.Skip(1))
            .WithEnvironmentVariables(SudoInvoker.With(env))
            .WithWorkingDirectory(workingDir ?? Repo.Root)
            .WithStandardOutputPipe(PipeTarget.ToDelegate(Add))
            .WithStandardErrorPipe(PipeTarget.ToDelegate(Add))
            .WithValidation(CommandResultValidation.None)
            .ExecuteAsync();
    }

    public static BackgroundRun Start(IReadOnlyList<string> command, IReadOnlyDictionary<string, string?>? env = null, string? workingDir = null) => new(command, env, workingDir);

    public int Pid => _task.ProcessId;

    public string Output
    {
        get
        {
            lock (_output)
                return _output.ToString();
        }
    }

    public Task<bool> WaitForOutputAsync(string text, TimeSpan timeout) => Shell.WaitUntilAsync(() => Output.Contains(text) || _task.Task.IsCompleted, timeout);

    public void Signal(int signal) => ProcessInfo.Signal(Pid, ProcessInfo.StartTime(Pid) ?? 0, signal);

    /// <summary>The result, or null when the build is still running after <paramref name="timeout"/>.</summary>
    public async Task<RunResult?> WaitForExitAsync(TimeSpan timeout)
    {
        if (await Task.WhenAny(_task.Task, Task.Delay(timeout)) != _task.Task)
            return null;
        return new RunResult(_task.Task.Result.ExitCode, Output);
    }
}

/// <summary>A btrfs snapshot of the image for one test to change (an image without init, a slow one...), removed after.</summary>
public sealed class TempImage : IAsyncDisposable
{
    public string Dir { get; }

    private TempImage(string dir) => Dir = dir;

    public static async Task<TempImage> SnapshotAsync(string prefix)
    {
        var dir = System.IO.Path.Combine(Repo.ChrootsDir, prefix + "-" + Guid.NewGuid().ToString("N")[..8]);
        await Cli.Wrap("btrfs").WithArguments(["-q", "subvolume", "snapshot", Repo.ImageDir, dir]).ExecuteBufferedAsync();
        return new TempImage(dir);
    }

    public string Name => System.IO.Path.GetFileName(Dir);

    /// <summary>A snapshot with one more unit, enabled (started at boot, stopped at power-off).</summary>
    public static async Task<TempImage> WithUnitAsync(string prefix, string unit, string text)
    {
        var image = await SnapshotAsync(prefix);
        var units = System.IO.Path.Combine(image.Dir, "etc/systemd/system");
        File.WriteAllText(System.IO.Path.Combine(units, unit), text);
        Directory.CreateDirectory(System.IO.Path.Combine(units, "multi-user.target.wants"));
        File.CreateSymbolicLink(System.IO.Path.Combine(units, "multi-user.target.wants", unit), "/etc/systemd/system/" + unit);
        return image;
    }

    /// <summary>A snapshot with no init: nspawn --boot exits at once.</summary>
    public static async Task<TempImage> WithoutInitAsync()
    {
        var image = await SnapshotAsync("no-init");
        foreach (var init in new[] { "sbin/init", "lib/systemd/systemd", "usr/lib/systemd/systemd", "usr/sbin/init" })
            File.Delete(System.IO.Path.Combine(image.Dir, init));
        return image;
    }

    public async ValueTask DisposeAsync() => await Subvolumes.RemoveTreeAsync(Repo.ChrootsDir, Dir, CancellationToken.None);
}
