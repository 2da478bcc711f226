using System.Diagnostics;
using CliWrap;
using Nspawn.Testing;

namespace Nspawn.Build.Benchmark;

/// <summary>
/// The agent: boot to started (its answer included) against bare nspawn, the first command and the first
/// InvokeAsync on a machine just started (the latter starts the runtime), later ones, commands against a bare
/// nsenter, small files, and the memory of the agent and of the InvokeAsync host.
/// </summary>
public static class AgentBench
{
    /// <summary>What InvokeAsync calls: the cost is the round trip.</summary>
    public static int Trivial(int x) => x + 1;

    public static async Task RunAsync(string image, Report report, int repeat)
    {
        Console.WriteLine("the agent");
        var (bareBoot, oursBoot, firstExec, firstInvoke) = (new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>());
        (long Rss, long Anon) agentRss = (0, 0), invokeRss = (0, 0);
        for (var i = 0; i < repeat + 1; i++)
        {
            var (bb, _) = await Bare.BootAndStopAsync(image);
            var sw = Stopwatch.StartNew();
            var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = image, LogicalName = "bench-agent" });
            await using (machine)
            {
                var boot = sw.Elapsed;
                sw.Restart();
                await machine.ExecCheckedAsync("true");
                var exec = sw.Elapsed;
                sw.Restart();
                await machine.InvokeAsync(() => Trivial(1));
                var invoke = sw.Elapsed;
                if (i == 0)
                {
                    // One machine for the round trips; its boot is the warm-up.
                    await RoundTripsAsync(machine, report, repeat);
                    agentRss = Rss(machine, native: true);
                    invokeRss = Rss(machine, native: false);
                    continue;
                }
                bareBoot.Add(bb);
                oursBoot.Add(boot);
                firstExec.Add(exec);
                firstInvoke.Add(invoke);
            }
        }
        report.Add("boot to started (the agent answers): ours (EphemeralMachine.StartAsync)", oursBoot);
        report.Add("boot to READY=1: bare systemd-nspawn, interleaved with the row above", bareBoot);
        report.Ratio("boot to started with the agent over bare nspawn", oursBoot, bareBoot, 1.10);
        report.Add("ExecAsync(\"true\"): the first command on a machine just started", firstExec, TimeSpan.FromMilliseconds(5));
        report.Add("InvokeAsync: the first call after the machine is started (starts the runtime)", firstInvoke, TimeSpan.FromMilliseconds(300));
        report.Memory("RSS of the agent (native) in a machine, after commands, files and calls", agentRss.Rss);
        report.Memory("of which its own (RssAnon)", agentRss.Anon);
        report.Note($"the agent's resident memory: target <= 20 MiB: {(agentRss.Rss is > 0 and <= 20L << 20 ? "met" : "MISSED")}");
        // Only in a machine whose tests call InvokeAsync; the runtime's files are the host's, in its page cache already.
        report.Memory("RSS of the InvokeAsync host (the managed agent, started by the first call)", invokeRss.Rss);
        report.Memory("of which its own (RssAnon: not the runtime's files, shared with the host)", invokeRss.Anon);
    }

    private static async Task RoundTripsAsync(EphemeralMachine machine, Report report, int repeat)
    {
        var n = Math.Max(50, repeat * 5);
        var (exec, nsenter, write, read, invoke) = (new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>());
        var bare = Cli.Wrap("nsenter").WithArguments(["-t", machine.LeaderPid.ToString(), "--all", "--", "true"]);
        var sw = new Stopwatch();
        for (var i = 0; i < n + 1; i++)
        {
            sw.Restart();
            await bare.ExecuteAsync();
            var b = sw.Elapsed;
            sw.Restart();
            await machine.ExecCheckedAsync("true");
            var e = sw.Elapsed;
            sw.Restart();
            await machine.WriteAllTextAsync("/srv/bench.txt", "a small file\n");
            var w = sw.Elapsed;
            sw.Restart();
            await machine.ReadAllTextAsync("/srv/bench.txt");
            var r = sw.Elapsed;
            sw.Restart();
            await machine.InvokeAsync(() => Trivial(i));
            var v = sw.Elapsed;
            if (i == 0)
                continue; // warm-up: JIT on both sides
            nsenter.Add(b);
            exec.Add(e); write.Add(w); read.Add(r); invoke.Add(v);
        }
        report.Add("ExecAsync(\"true\") through the agent", exec);
        report.Add("bare nsenter -t LEADER --all -- true (CliWrap)", nsenter);
        report.Ratio("ExecAsync(\"true\") over bare nsenter", exec, nsenter, 0.5);
        report.Add("WriteAllTextAsync, a small file", write, TimeSpan.FromMilliseconds(5));
        report.Add("ReadAllTextAsync, a small file", read, TimeSpan.FromMilliseconds(5));
        report.Add("InvokeAsync of a trivial static method, after the first", invoke, TimeSpan.FromMilliseconds(5));
    }

    /// <summary>
    /// The resident memory of this machine's native agent (run by the guest's loader: "nspawn-agent" is its second
    /// argument), or of its managed agent (the InvokeAsync host, or the whole agent where the native one is absent).
    /// </summary>
    private static (long Rss, long Anon) Rss(EphemeralMachine machine, bool native)
    {
        var ns = new FileInfo($"/proc/{machine.LeaderPid}/ns/pid").LinkTarget;
        foreach (var dir in Directory.EnumerateDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)))
        {
            try
            {
                if (new FileInfo(Path.Combine(dir, "ns/pid")).LinkTarget != ns)
                    continue;
                var args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                var match = native ? args.Length > 1 && args[1].EndsWith("/nspawn-agent", StringComparison.Ordinal)
                    : args.Length > 0 && args[0].EndsWith("/dotnet", StringComparison.Ordinal) && args.Any(a => a.EndsWith("Nspawn.Testing.Agent.dll", StringComparison.Ordinal));
                if (match)
                {
                    var status = File.ReadAllLines(Path.Combine(dir, "status"));
                    long Kb(string key) => long.Parse(status.First(l => l.StartsWith(key + ":"))[(key.Length + 1)..].Trim().Split(' ')[0]) * 1024;
                    return (Kb("VmRSS"), Kb("RssAnon"));
                }
            }
            catch (IOException)
            {
            }
        }
        return (0, 0);
    }
}
