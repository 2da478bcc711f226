using System.Diagnostics;
using CliWrap;
using Nspawn.Testing;

namespace Nspawn.Build.Benchmark;

/// <summary>
/// The agent: boot to started (its answer included) against bare nspawn, the first and later InvokeAsync, commands
/// against a bare nsenter, small files, and the agent's memory.
/// </summary>
public static class AgentBench
{
    /// <summary>What InvokeAsync calls: the cost is the round trip.</summary>
    public static int Trivial(int x) => x + 1;

    public static async Task RunAsync(string image, Report report, int repeat)
    {
        Console.WriteLine("the agent");
        var (bareBoot, oursBoot, firstInvoke) = (new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>());
        (long Rss, long Anon) agentRss = (0, 0);
        for (var i = 0; i < repeat + 1; i++)
        {
            var (bb, _) = await Bare.BootAndStopAsync(image);
            var sw = Stopwatch.StartNew();
            var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = image, LogicalName = "bench-agent" });
            await using (machine)
            {
                var boot = sw.Elapsed;
                sw.Restart();
                await machine.InvokeAsync(() => Trivial(1));
                var invoke = sw.Elapsed;
                if (i == 0)
                {
                    // One machine for the round trips; its boot is the warm-up.
                    await RoundTripsAsync(machine, report, repeat);
                    agentRss = AgentRss(machine);
                    continue;
                }
                bareBoot.Add(bb);
                oursBoot.Add(boot);
                firstInvoke.Add(invoke);
            }
        }
        report.Add("boot to started (the agent answers): ours (EphemeralMachine.StartAsync)", oursBoot);
        report.Add("boot to READY=1: bare systemd-nspawn, interleaved with the row above", bareBoot);
        report.Ratio("boot to started with the agent over bare nspawn", oursBoot, bareBoot, 1.10);
        report.Add("InvokeAsync: the first call after the machine is started", firstInvoke, TimeSpan.FromMilliseconds(300));
        report.Memory("RSS of the agent in a machine, after commands, files and calls", agentRss.Rss);
        // The runtime's files are the host's, in its page cache already: what the machine adds is the agent's own memory.
        report.Memory("of which its own (RssAnon: not the runtime's files, shared with the host)", agentRss.Anon);
        report.Note($"the agent's own memory: target <= 40 MiB: {(agentRss.Anon <= 40L << 20 ? "met" : "MISSED")}");
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

    /// <summary>The resident memory of the agent process of this machine (in its PID namespace).</summary>
    private static (long Rss, long Anon) AgentRss(EphemeralMachine machine)
    {
        var ns = new FileInfo($"/proc/{machine.LeaderPid}/ns/pid").LinkTarget;
        foreach (var dir in Directory.EnumerateDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)))
        {
            try
            {
                if (new FileInfo(Path.Combine(dir, "ns/pid")).LinkTarget == ns && File.ReadAllText(Path.Combine(dir, "cmdline")).Contains("Nspawn.Testing.Agent.dll"))
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
