using System.Diagnostics;
using System.Text;
using System.Text.Json;
using CliWrap;
using CliWrap.Buffered;

using Nspawn.Build.Tests;

namespace Nspawn.Build.Benchmark;

public static class Host
{
    public static async Task<Dictionary<string, string>> DescribeAsync() => new()
    {
        ["date"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'"),
        ["cores"] = Environment.ProcessorCount.ToString(),
        ["memory"] = $"{File.ReadLines("/proc/meminfo").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1] } kB",
        ["kernel"] = File.ReadAllText("/proc/sys/kernel/osrelease").Trim(),
        ["systemd"] = (await Cli.Wrap("systemd-nspawn").WithArguments(["--version"]).ExecuteBufferedAsync()).StandardOutput.Split('\n')[0],
        ["pid 1"] = LaunchOptions.HostHasSystemd ? "systemd" : File.ReadAllText("/proc/1/comm").Trim() + " (not systemd: direct launcher)",
        ["dotnet"] = Environment.Version.ToString(),
    };
}

/// <summary>The baseline: the bare command (with our console mode), a notify socket to see READY=1, and SIGTERM to stop.</summary>
public static class Bare
{
    public static async Task<(TimeSpan Boot, TimeSpan Stop)> BootAndStopAsync(string image)
    {
        var sw = Stopwatch.StartNew();
        var running = await BootAsync(image, []);
        var boot = sw.Elapsed;
        sw.Restart();
        await StopAsync(running);
        return (boot, sw.Elapsed);
    }

    /// <summary>
    /// <paramref name="count"/> machines booted at once to READY=1 and stopped, as a whole; <paramref name="bridged"/>: on a
    /// bridge made for them and removed after (each gets a veth on it), the bare cost of a private network.
    /// </summary>
    public static async Task<TimeSpan> BootAndStopManyAsync(string image, int count, bool bridged)
    {
        var bridge = "nsb-" + Guid.NewGuid().ToString("N")[..8];
        var sw = Stopwatch.StartNew();
        if (bridged)
        {
            await Cli.Wrap("ip").WithArguments(["link", "add", "name", bridge, "type", "bridge"]).ExecuteAsync();
            await Cli.Wrap("ip").WithArguments(["link", "set", bridge, "up"]).ExecuteAsync();
        }
        try
        {
            var machines = await Task.WhenAll(Enumerable.Range(0, count).Select(_ => BootAsync(image, bridged ? [$"--network-bridge={bridge}"] : [])));
            await Task.WhenAll(machines.Select(StopAsync));
        }
        finally
        {
            if (bridged)
                await Cli.Wrap("ip").WithArguments(["link", "delete", bridge]).WithValidation(CommandResultValidation.None).ExecuteAsync();
        }
        return sw.Elapsed;
    }

    /// <summary>A bare nspawn boot, returned at READY=1.</summary>
    private static async Task<CommandTask<CommandResult>> BootAsync(string image, IReadOnlyList<string> extra)
    {
        var name = "bare-" + Guid.NewGuid().ToString("N")[..8];
        Directory.CreateDirectory(MachineLauncher.StateDir);
        var notify = NotifyListener.Bind(Path.Combine(MachineLauncher.StateDir, name + ".notify"));
        var running = Cli.Wrap("systemd-nspawn")
            .WithArguments(["--quiet", "--ephemeral", "--boot", "--notify-ready=yes", "--register=no", "--keep-unit", "--console=read-only", $"--directory={image}", $"--machine={name}", .. extra])
            .WithEnvironmentVariables(e => e.Set("NOTIFY_SOCKET", notify.Path))
            // Drained, not PipeTarget.Null: nspawn dies of a closed stdout.
            .WithStandardOutputPipe(PipeTarget.ToDelegate(_ => { }))
            .WithStandardErrorPipe(PipeTarget.ToDelegate(_ => { }))
            .WithValidation(CommandResultValidation.None)
            .ExecuteAsync();
        using (notify)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await notify.WaitForReadyAsync(timeout.Token);
        }
        return running;
    }

    private static async Task StopAsync(CommandTask<CommandResult> running)
    {
        ProcessInfo.Signal(running.ProcessId, ProcessInfo.StartTime(running.ProcessId) ?? 0, ProcessInfo.SigTerm);
        await running;
    }
}

/// <summary>A plain-folder copy of the image on the root file system (not btrfs), for overlay machines.</summary>
public static class PlainCopy
{
    public static async Task<string> OfAsync(string image)
    {
        var dir = Path.Combine("/var/tmp/nspawn-bench-overlay", Path.GetFileName(image));
        if (!File.Exists(Path.Combine(dir, ImageBuilder.StampPath)))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(dir)!);
            await Cli.Wrap("cp").WithArguments(["-a", "--", image, Path.GetDirectoryName(dir)!]).ExecuteBufferedAsync();
        }
        return dir;
    }
}

/// <summary>Ours: the launcher that StartEphemeral and StopEphemeral call.</summary>
public static class Ours
{
    private static LaunchOptions Options(string image, string logical, EphemeralMode mode = EphemeralMode.Snapshot, bool privateUsers = true) =>
        new(logical, image) { UseSystemdRun = LaunchOptions.HostHasSystemd, Mode = mode, PrivateUsers = privateUsers };

    public static async Task<(TimeSpan Boot, TimeSpan Stop)> BootAndStopAsync(string image, string logical, EphemeralMode mode = EphemeralMode.Snapshot,
        bool privateUsers = true)
    {
        var sw = Stopwatch.StartNew();
        var machine = await MachineLauncher.StartAsync(Options(image, logical, mode, privateUsers), CancellationToken.None);
        var boot = sw.Elapsed;
        sw.Restart();
        await MachineLauncher.StopAsync(machine, CancellationToken.None);
        return (boot, sw.Elapsed);
    }

    /// <summary>Boots from a slim copy of the image (a snapshot with ImageBuilder.Slim applied), repeat times after a warm-up.</summary>
    public static async Task<List<TimeSpan>> SlimBootsAsync(string image, int repeat)
    {
        var slim = Path.Combine(Path.GetDirectoryName(image)!, "bench-slim");
        await Subvolumes.RemoveTreeAsync(Path.GetDirectoryName(image)!, slim, CancellationToken.None);
        await Cli.Wrap("btrfs").WithArguments(["-q", "subvolume", "snapshot", image, slim]).ExecuteBufferedAsync();
        try
        {
            ImageBuilder.Slim(slim);
            var boots = new List<TimeSpan>();
            for (var i = 0; i < repeat + 1; i++)
            {
                var (boot, _) = await BootAndStopAsync(slim, "slim");
                if (i > 0)
                    boots.Add(boot);
            }
            return boots;
        }
        finally
        {
            await Subvolumes.RemoveTreeAsync(Path.GetDirectoryName(image)!, slim, CancellationToken.None);
        }
    }

    /// <summary>Starts n machines (at once or in a row), checks each guest reaches 'running', stops them all.</summary>
    public static async Task<(TimeSpan Boot, int NotRunning, int SlowStops)> ManyAsync(string image, int n, bool parallel)
    {
        var machines = new List<Machine>();
        var sw = Stopwatch.StartNew();
        if (parallel)
            machines.AddRange(await Task.WhenAll(Enumerable.Range(0, n).Select(i => MachineLauncher.StartAsync(Options(image, $"m{i}"), CancellationToken.None))));
        else
            for (var i = 0; i < n; i++)
                machines.Add(await MachineLauncher.StartAsync(Options(image, $"m{i}"), CancellationToken.None));
        var boot = sw.Elapsed;
        var states = await Task.WhenAll(machines.Select(m => InMachineAsync(m, "systemctl", "is-system-running", "--wait")));
        var notRunning = states.Count(s => s != "running");
        var stops = await Task.WhenAll(machines.Select(async m =>
        {
            var t = Stopwatch.StartNew();
            await MachineLauncher.StopAsync(m, CancellationToken.None);
            return t.Elapsed;
        }));
        return (boot, notRunning, stops.Count(s => s > TimeSpan.FromSeconds(10)));
    }

    /// <summary>The peak RSS (VmHWM) of the nspawn processes of n running machines, summed.</summary>
    public static async Task<(long Sum, long Each)> NspawnMemoryAsync(string image, int n)
    {
        var machines = await Task.WhenAll(Enumerable.Range(0, n).Select(i => MachineLauncher.StartAsync(Options(image, $"mem{i}"), CancellationToken.None)));
        await Task.WhenAll(machines.Select(m => InMachineAsync(m, "systemctl", "is-system-running", "--wait")));
        var peaks = machines.Select(m => Rss.PeakOf(m.NspawnPid)).ToList();
        await Task.WhenAll(machines.Select(m => MachineLauncher.StopAsync(m, CancellationToken.None)));
        return (peaks.Sum(), peaks.Max());
    }

    private static async Task<string> InMachineAsync(Machine m, params string[] command) =>
        (await Cli.Wrap("nsenter").WithArguments(["-t", m.LeaderPid.ToString(), "--all", "--", .. command])
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync()).StandardOutput.Trim();
}

public static class Rss
{
    /// <summary>VmHWM of a process in bytes, 0 when it is gone.</summary>
    public static long PeakOf(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmHWM:"));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        catch (IOException)
        {
            return 0;
        }
    }
}

/// <summary>The sample, with the package packed as users get it, run as whole processes.</summary>
public sealed class Sample : IAsyncDisposable
{
    private readonly string _root;
    private readonly string _version = $"0.1.0-bench.{DateTime.UtcNow:yyyyMMddHHmmss}";
    private readonly string _cache = Directory.CreateTempSubdirectory("nspawn-bench-nuget-").FullName;

    private Sample(string root) => _root = root;

    public static async Task<Sample> PackAsync(string root)
    {
        var sample = new Sample(root);
        await Cli.Wrap("dotnet").WithArguments(["pack", Path.Combine(root, "src/Nspawn.Build"), "-c", "Release", $"-p:Version={sample._version}", "-p:NspawnNativeAgent=true", "-v:q", "-nologo"])
            .ExecuteBufferedAsync();
        return sample;
    }

    public async Task<(TimeSpan Elapsed, long PeakRss, string Output)> RunAsync(IEnumerable<string> args)
    {
        var sw = Stopwatch.StartNew();
        var running = Cli.Wrap("dotnet").WithArguments([.. args, Path.Combine(_root, "tests/Sample"), $"-p:NspawnBuildVersion={_version}", "-nologo", "-v:q"])
            .WithEnvironmentVariables(e => e.Set("NUGET_PACKAGES", _cache))
            .WithValidation(CommandResultValidation.None)
            .ExecuteBufferedAsync();
        long peak = 0;
        while (!running.Task.IsCompleted)
        {
            peak = Math.Max(peak, Rss.PeakOf(running.ProcessId));
            await Task.WhenAny(running.Task, Task.Delay(20));
        }
        var result = await running;
        if (result.ExitCode != 0 && !result.StandardOutput.Contains("Failed!"))
            Console.WriteLine($"  warning: dotnet {string.Join(' ', args)} exited with {result.ExitCode}:\n{result.StandardOutput}");
        return (sw.Elapsed, peak, result.StandardOutput);
    }

    public ValueTask DisposeAsync()
    {
        Directory.Delete(_cache, recursive: true);
        File.Delete(Path.Combine(_root, "artifacts/feed", $"Nspawn.Build.{_version}.nupkg"));
        return ValueTask.CompletedTask;
    }
}

public sealed record PeerResult(string Name, IReadOnlyList<TimeSpan>? Boot, TimeSpan? Import, string Note)
{
    public IReadOnlyList<TimeSpan> Exec { get; init; } = [];
    public IReadOnlyList<TimeSpan> Stop { get; init; } = [];
}

public static class Stats
{
    /// <summary>The middle value; of an even count, the mean of the two middle ones (not the upper one: of two samples, that was the slower).</summary>
    public static TimeSpan Median(IReadOnlyList<TimeSpan> s)
    {
        var sorted = s.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}

/// <summary>
/// The peer: podman (Debian's package, with runc) booting the same root file system with systemd as PID 1. On a host
/// whose PID 1 is not systemd it needs runc (crun fails on this cgroup layout), cgroupfs, and explicit limits (the
/// defaults ask for more than the sandbox allows). Installs nothing: without podman it says so.
/// </summary>
public static class Podman
{
    private static readonly string[] Global = ["--cgroup-manager=cgroupfs", "--runtime=runc"];

    private static Task<BufferedCommandResult> RunAsync(params string[] args) =>
        Cli.Wrap("podman").WithArguments([.. Global, .. args]).WithValidation(CommandResultValidation.None)
            .ExecuteBufferedAsync(new CancellationTokenSource(TimeSpan.FromMinutes(5)).Token);

    /// <summary>This process's hard limit of open files: a container may not have more.</summary>
    private static string OpenFilesLimit() =>
        File.ReadLines("/proc/self/limits").First(l => l.StartsWith("Max open files")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[4];

    public static async Task<PeerResult> BootAsync(string image, int rounds)
    {
        if (ToolLocator.Find("podman") is null || ToolLocator.Find("runc") is null)
            return new("podman", null, null, "podman or runc is not installed (apt-get install podman runc), so it was not measured");
        var tag = "localhost/nspawn-bench:latest";
        var sw = Stopwatch.StartNew();
        var import = await (Cli.Wrap("tar").WithArguments(["-C", image, "-cf", "-", "."]) | Cli.Wrap("podman").WithArguments([.. Global, "import", "-", tag]))
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
        var importTime = sw.Elapsed;
        if (import.ExitCode != 0)
            return new("podman", null, null, $"podman import failed: {import.StandardError.Trim()}");
        var (boots, execs, stops) = (new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>());
        try
        {
            for (var i = 0; i < rounds + 1; i++)
            {
                var name = "nspawn-bench-" + Guid.NewGuid().ToString("N")[..8];
                sw.Restart();
                // Explicit limits: podman's defaults (and the host's own nproc) are more than runc may set here.
                var files = OpenFilesLimit();
                var run = await RunAsync("run", "-d", "--rm", "--systemd=always", "--ulimit", $"nofile={files}:{files}", "--ulimit", "nproc=4096:4096",
                    "--name", name, tag, "/lib/systemd/systemd");
                if (run.ExitCode != 0)
                    return new("podman", null, importTime, $"podman run --systemd=always failed here: {run.StandardError.Trim()}");
                try
                {
                    string state;
                    do
                        state = (await RunAsync("exec", name, "systemctl", "is-system-running")).StandardOutput.Trim();
                    while (state is not ("running" or "degraded") && sw.Elapsed < TimeSpan.FromSeconds(60));
                    if (state is not ("running" or "degraded"))
                        return new("podman", null, importTime, $"the guest's systemd did not reach running within 60 s under podman (last state '{state}')");
                    var boot = sw.Elapsed;
                    sw.Restart();
                    await RunAsync("exec", name, "true");
                    var exec = sw.Elapsed;
                    sw.Restart();
                    await RunAsync("stop", "-t", "15", name);
                    if (i > 0)
                    {
                        boots.Add(boot);
                        execs.Add(exec);
                        stops.Add(sw.Elapsed);
                    }
                }
                finally
                {
                    await RunAsync("rm", "-f", "-t", "5", name);
                }
            }
        }
        finally
        {
            await RunAsync("rmi", "-f", tag);
        }
        return new("podman", boots, importTime, "podman run --systemd=always (runc, cgroupfs, explicit ulimits), until systemctl is-system-running says running (polled with podman exec)")
        {
            Exec = execs, Stop = stops,
        };
    }
}

/// <summary>Rows of timings (median, min, max), ratios against targets, notes; written as JSON and Markdown.</summary>
public sealed class Report(Dictionary<string, string> host, int repeat)
{
    private readonly List<object> _rows = [];
    private readonly List<string> _lines = [];

    private static double Ms(TimeSpan t) => Math.Round(t.TotalMilliseconds, 1);
    private static TimeSpan Median(IReadOnlyList<TimeSpan> s) => Stats.Median(s);

    public bool Has(string name) => _lines.Any(l => l.StartsWith($"| {name} |"));

    public void Add(string name, IReadOnlyList<TimeSpan> samples, TimeSpan? target = null)
    {
        if (samples.Count == 0)
        {
            // Nothing to time (for example no test found a pool machine ready): a row that says so, not a crash.
            _rows.Add(new { name, n = 0, verdict = "no sample" });
            _lines.Add($"| {name} | 0 | | | | no sample |");
            Console.WriteLine(_lines[^1]);
            return;
        }
        var (med, min, max) = (Median(samples), samples.Min(), samples.Max());
        var verdict = target is { } t ? (med <= t ? $"target < {Ms(t)} ms: met" : $"target < {Ms(t)} ms: MISSED") : "";
        _rows.Add(new { name, n = samples.Count, medianMs = Ms(med), minMs = Ms(min), maxMs = Ms(max), verdict });
        _lines.Add($"| {name} | {samples.Count} | {Ms(med)} | {Ms(min)} | {Ms(max)} | {verdict} |");
        Console.WriteLine(_lines[^1]);
    }

    public void Ratio(string name, IReadOnlyList<TimeSpan> ours, IReadOnlyList<TimeSpan> baseline, double target)
    {
        // The verdict on the exact ratio, not the rounded one it shows (1.104x is not at most 1.1x).
        var exact = Median(ours) / Median(baseline);
        var ratio = Math.Round(exact, 2);
        var verdict = exact <= target ? $"target <= {target}x: met" : $"target <= {target}x: MISSED";
        _rows.Add(new { name, ratio, target, verdict });
        _lines.Add($"| {name} | | {ratio}x | | | {verdict} |");
        Console.WriteLine(_lines[^1]);
    }

    public void Difference(string name, IReadOnlyList<TimeSpan> ours, IReadOnlyList<TimeSpan> baseline, double targetSeconds)
    {
        var exact = (Median(ours) - Median(baseline)).TotalSeconds;
        var seconds = Math.Round(exact, 2);
        var verdict = exact <= targetSeconds ? $"target <= {targetSeconds} s: met" : $"target <= {targetSeconds} s: MISSED";
        _rows.Add(new { name, seconds, targetSeconds, verdict });
        _lines.Add($"| {name} | | {seconds} s | | | {verdict} |");
        Console.WriteLine(_lines[^1]);
    }

    public void Memory(string name, long bytes)
    {
        _rows.Add(new { name, peakRssMiB = Math.Round(bytes / 1048576.0, 1) });
        _lines.Add($"| {name} | | {Math.Round(bytes / 1048576.0, 1)} MiB | | | |");
        Console.WriteLine(_lines[^1]);
    }

    public void Peer(PeerResult peer)
    {
        if (peer.Import is { } import)
            Add($"{peer.Name}: import of the root file system", [import]);
        if (peer.Boot is { Count: > 0 } boot)
            Add($"{peer.Name}: boot until systemd is running", boot);
        if (peer.Exec.Count > 0)
            Add($"{peer.Name}: exec of 'true' (podman exec)", peer.Exec);
        if (peer.Stop.Count > 0)
            Add($"{peer.Name}: stop (podman stop)", peer.Stop);
        Note($"{peer.Name}: {peer.Note}");
    }

    public void Note(string text)
    {
        _rows.Add(new { note = text });
        _lines.Add($"| {text} | | | | | |");
        Console.WriteLine(_lines[^1]);
    }

    public async Task WriteAsync(string dir)
    {
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "result.json"),
            JsonSerializer.Serialize(new { host, repeat, rows = _rows }, new JsonSerializerOptions { WriteIndented = true }));
        var md = new StringBuilder();
        md.AppendLine($"Measured {host["date"]} on {host["cores"]} cores, {host["memory"]}, kernel {host["kernel"]}, {host["systemd"]}, PID 1: {host["pid 1"]}; repeat {repeat}.");
        md.AppendLine();
        md.AppendLine("| measure | n | median (ms) | min (ms) | max (ms) | verdict |");
        md.AppendLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var line in _lines)
            md.AppendLine(line);
        await File.WriteAllTextAsync(Path.Combine(dir, "result.md"), md.ToString());
        Console.WriteLine();
        Console.WriteLine(md);
        Console.WriteLine($"Written to {dir}/result.json and result.md");
    }
}

/// <summary>A suite whose tests each take a fresh machine (EphemeralMachine.StartAsync) and run one command, with a warm pool or without.</summary>
public static class PoolBench
{
    public sealed record Run(TimeSpan Total, List<TimeSpan> Waits, List<TimeSpan> ReadyWaits, List<TimeSpan> Execs);

    public static async Task<Run> TestsAsync(string image, int poolSize, int tests)
    {
        // The benchmark stays root: the tests' API would drop to a sudo user.
        Environment.SetEnvironmentVariable("SUDO_UID", null);
        var (waits, readyWaits, execs) = (new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>());
        var sw = Stopwatch.StartNew();
        // As StartEphemeral does it, when the tests begin.
        var runDir = poolSize > 0 ? RunFiles.Create() : null;
        var pool = runDir is null ? null : MachinePool.Start(new LaunchOptions("pool", image) { UseSystemdRun = LaunchOptions.HostHasSystemd }, poolSize, runDir);
        Environment.SetEnvironmentVariable(PoolDir.Variable, pool?.Dir);
        try
        {
            for (var i = 0; i < tests; i++)
            {
                var ready = pool is not null && PoolDir.ReadyCount(pool.Dir) > 0;
                var wait = Stopwatch.StartNew();
                await using var machine = await Nspawn.Testing.EphemeralMachine.StartAsync(new() { ImageDir = image, LogicalName = "test" });
                waits.Add(wait.Elapsed);
                if (ready)
                    readyWaits.Add(wait.Elapsed);
                var exec = Stopwatch.StartNew();
                await machine.ExecCheckedAsync("true");
                execs.Add(exec.Elapsed);
            }
            return new Run(sw.Elapsed, waits, readyWaits, execs);
        }
        finally
        {
            Environment.SetEnvironmentVariable(PoolDir.Variable, null);
            // The pool's last machines stop beside the build's own, at the end of the run.
            if (pool is not null)
                await pool.StopAsync();
            if (runDir is not null)
                RunFiles.Remove(runDir);
        }
    }
}

/// <summary>Where ContainerTest's time goes: MSBuild's performance summary of our targets, one row per phase.</summary>
public static class Phases
{
    /// <summary>Each phase and the targets whose (exclusive) time it is.</summary>
    public static readonly (string Phase, string[] Targets)[] Map =
    [
        ("validation (ResolveNspawnSettings)", ["_NspawnResolve", "_NspawnCheckOnVSTest"]),
        ("reaper", ["_NspawnReapLeftovers"]),
        ("image check (mount, plan, up to date)", ["_NspawnMountStore", "_NspawnPlanImages", "NspawnPrepareImages"]),
        ("boot (NspawnStartMachines)", ["NspawnStartMachines"]),
        ("tests (VSTest)", ["VSTest"]),
        ("stop (NspawnStopMachines)", ["NspawnStopMachines"]),
    ];

    /// <summary>Target name to milliseconds, from the "Target Performance Summary" that -clp:PerformanceSummary prints.</summary>
    public static Dictionary<string, double> Parse(string output)
    {
        var times = new Dictionary<string, double>();
        var inTargets = false;
        foreach (var line in output.Split('\n'))
        {
            if (line.Contains("Target Performance Summary"))
                inTargets = true;
            else if (line.Contains("Task Performance Summary"))
                inTargets = false;
            else if (inTargets && System.Text.RegularExpressions.Regex.Match(line, @"^\s*(\d+) ms\s+(\S+)\s+\d+ calls") is { Success: true } m)
                times[m.Groups[2].Value] = double.Parse(m.Groups[1].Value);
        }
        return times;
    }
}
