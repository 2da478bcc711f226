// The benchmark: where the time goes, against bare systemd-nspawn and a peer, in whole-process timings and ratios.
// Usage (root): dotnet run --project tests/Nspawn.Build.Benchmark -c Release -- [--repeat N] [--quick] [--agent] [--boot] [--pool] [--overhead]
// (--agent, --boot, --pool, --overhead: that part alone.)
// It asserts nothing about time; it prints a table and writes artifacts/benchmark/result.{json,md}.
using System.Diagnostics;
using System.Text.Json;
using CliWrap;
using CliWrap.Buffered;
using Nspawn.Build;
using Nspawn.Build.Benchmark;
using Nspawn.Build.Tests;

var repeat = args.SkipWhile(a => a != "--repeat").Skip(1).Select(int.Parse).FirstOrDefault(10);
var quick = args.Contains("--quick");
var root = Repo.Root;
var chroots = Path.Combine(root, "test_chroots");
var report = new Report(await Host.DescribeAsync(), repeat);
Privilege.RequireRoot();
// Nothing else on the host: the build servers that compiled this benchmark are stopped (the compiling rows start their own, after a warm-up round).
await Cli.Wrap("dotnet").WithArguments(["build-server", "shutdown"]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();

// The image, as ContainerTest makes it.
var store = new BtrfsStore(chroots, Path.Combine(chroots, "btrfs.img"), Validate.Size(Settings.BtrfsImageSize.DefaultText, "size"));
await store.EnsureAsync(Console.WriteLine, Console.WriteLine, CancellationToken.None);
var builder = new ImageBuilder(chroots);
var spec = TestImages.Spec("bookworm", "bookworm", "http://deb.debian.org/debian", "minbase", "dbus,systemd");
var sw = Stopwatch.StartNew();
if (await builder.EnsureAsync(spec, m => Console.WriteLine("  " + m), CancellationToken.None) == ImageResult.Built)
    report.Add("image: full debootstrap (first build)", [sw.Elapsed]);
var image = builder.ImageDir(spec);

// --pool, --overhead: the pool's rows, or ContainerTest's (the overhead like for like), alone.
var part = args.Contains("--pool") ? "pool" : args.Contains("--overhead") ? "overhead" : null;

// 0. The agent in every machine. --agent: this part alone.
if (!args.Contains("--boot") && part is null)
    await AgentBench.RunAsync(image, report, repeat);
if (args.Contains("--agent"))
{
    await report.WriteAsync(Path.Combine(root, "artifacts/benchmark"));
    return;
}

// 1. Boot to READY=1 and stop: ours (the launcher StartEphemeral calls) against bare nspawn, interleaved A B A B.
if (part is null)
{
    Console.WriteLine("boot and stop, ours against bare systemd-nspawn");
    var (oursBoot, oursStop, bareBoot, bareStop) = (new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>());
    var (overlayBoot, overlayStop) = (new List<TimeSpan>(), new List<TimeSpan>());
    var (sharedUsersBoot, sharedUsersStop) = (new List<TimeSpan>(), new List<TimeSpan>());
    var plain = await PlainCopy.OfAsync(image);
    for (var i = 0; i < repeat + 1; i++)
    {
        var (bb, bs) = await Bare.BootAndStopAsync(image);
        var (ob, os) = await Ours.BootAndStopAsync(image, "bench");
        var (vb, vs) = await Ours.BootAndStopAsync(plain, "bench", EphemeralMode.Overlay);
        var (sb, ss) = await Ours.BootAndStopAsync(image, "bench", privateUsers: false);
        if (i == 0)
            continue; // warm-up: page cache, JIT
        bareBoot.Add(bb); bareStop.Add(bs); oursBoot.Add(ob); oursStop.Add(os); overlayBoot.Add(vb); overlayStop.Add(vs);
        sharedUsersBoot.Add(sb); sharedUsersStop.Add(ss);
    }
    report.Add("boot to READY=1: bare systemd-nspawn", bareBoot);
    report.Add("boot to READY=1: ours (MachineLauncher)", oursBoot);
    report.Add("stop: bare SIGTERM", bareStop);
    report.Add("stop: ours (MachineLauncher.StopAsync)", oursStop);
    report.Add("boot to READY=1: ours, overlay mode (plain folder on the root file system)", overlayBoot);
    report.Add("boot to READY=1: ours, slim image (NspawnSlimBoot)", await Ours.SlimBootsAsync(image, repeat));
    report.Add("stop: ours, overlay mode", overlayStop);
    report.Ratio("boot overhead over bare nspawn", oursBoot, bareBoot, 1.10);
    report.Ratio("stop overhead over bare SIGTERM", oursStop, bareStop, 1.20);
    // The boundary's price: the default (a user namespace per machine) against the unsafe opt-out, same launcher, same run.
    report.Add("boot to started: ours without a user namespace (NspawnPrivateUsers=false)", sharedUsersBoot);
    report.Add("stop: ours without a user namespace", sharedUsersStop);
    report.Ratio("boot with a user namespace over without", oursBoot, sharedUsersBoot, 1.10);
    // --boot: the boot and stop rows alone.
    if (args.Contains("--boot"))
    {
        await report.WriteAsync(Path.Combine(root, "artifacts/benchmark"));
        return;
    }
}

// 2. Eight machines from one image at once, against one, and against eight in a row; every guest must reach 'running'.
if (part is null)
{
    Console.WriteLine("eight machines at once");
    var (one, eight, inRow) = (new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>());
    var (failedUnits, hangs) = (0, 0);
    var rounds = quick ? 2 : Math.Max(repeat, 20);
    for (var i = 0; i < rounds; i++)
    {
        one.Add((await Ours.ManyAsync(image, 1, parallel: true)).Boot);
        var at = await Ours.ManyAsync(image, 8, parallel: true);
        eight.Add(at.Boot);
        failedUnits += at.NotRunning;
        hangs += at.SlowStops;
        if (i < repeat)
            inRow.Add((await Ours.ManyAsync(image, 8, parallel: false)).Boot);
    }
    report.Add("1 machine: until ready", one);
    report.Add("8 machines at once: until all ready", eight);
    report.Add("8 machines in a row: until all ready", inRow);
    report.Ratio("8 at once against 8 in a row", eight, inRow, 1.0);
    report.Note($"8 at once, {rounds} rounds: {failedUnits} guests not 'running' (a failed unit), {hangs} stops over 10 s");
}

// 2b. A suite of 20 tests, each taking a fresh machine (EphemeralMachine.StartAsync) and running one command: a warm pool of 2 against none.
if (part is null or "pool")
{
    Console.WriteLine("20 tests, each with a fresh machine: NspawnPoolSize=2 against no pool");
    var (unpooled, pooled) = (new List<PoolBench.Run>(), new List<PoolBench.Run>());
    // Three rounds even when quick: one pair of suites read 0.45x in one run and 0.51x in the next.
    for (var i = 0; i < 3; i++)
    {
        unpooled.Add(await PoolBench.TestsAsync(image, 0, 20));
        pooled.Add(await PoolBench.TestsAsync(image, 2, 20));
    }
    report.Add("20 tests, a fresh machine and one exec each: no pool", unpooled.Select(r => r.Total).ToList());
    report.Add("20 tests, a fresh machine and one exec each: NspawnPoolSize=2", pooled.Select(r => r.Total).ToList());
    report.Ratio("20 tests: pool of 2 against no pool", pooled.Select(r => r.Total).ToList(), unpooled.Select(r => r.Total).ToList(), 0.5);
    report.Add("a test's wait for its machine: no pool (a boot)", unpooled.SelectMany(r => r.Waits).ToList());
    report.Add("a test's wait for its machine: pool of 2, every test", pooled.SelectMany(r => r.Waits).ToList());
    report.Add("exec of 'true' in a test's machine (ExecAsync)", unpooled.SelectMany(r => r.Execs).ToList());
    report.Add("a test's wait for its machine: pool of 2, one was ready", pooled.SelectMany(r => r.ReadyWaits).ToList(), target: TimeSpan.FromMilliseconds(50));
}

if (part == "pool")
{
    await report.WriteAsync(Path.Combine(root, "artifacts/benchmark"));
    return;
}

// 3. ContainerTest on the sample with a cached image, against VSTest on the same project with no machines.
Console.WriteLine("ContainerTest against plain VSTest");
await using (var sample = await Sample.PackAsync(root))
{
    // One test that uses the build's machine; no pool (the sample keeps one for its tests that take their own).
    var filter = "-p:VSTestTestCaseFilter=FullyQualifiedName~Fails_when_asked_to";
    const string noPool = "-p:NspawnPoolSize=0";
    // Like for like, interleaved in each round: one machine on the host's network (SampleOneMachine), VSTest, and a bare
    // boot to READY=1 plus its stop; then the sample's own two machines on a private network, and bare nspawn doing as much.
    const string oneMachine = "-p:SampleOneMachine=true";
    const string hostNetwork = "-p:NspawnNetwork=host";
    var (containerTest, vstest, bareBootStop) = (new List<TimeSpan>(), new List<TimeSpan>(), new List<TimeSpan>());
    var (twoPrivate, bareTwoBridged) = (new List<TimeSpan>(), new List<TimeSpan>());
    var phases = Phases.Map.ToDictionary(p => p.Phase, _ => new List<TimeSpan>());
    long msbuildPeak = 0;
    // At least 5 rounds: a median of 3 whole builds moved by a tenth of a second between runs on 2 cores.
    var rounds = Math.Max(5, repeat);
    for (var i = 0; i < rounds + 1; i++)
    {
        var c = await sample.RunAsync(["build", "-t:ContainerTest", filter, noPool, oneMachine, hostNetwork, "-clp:PerformanceSummary"]);
        var v = await sample.RunAsync(["build", "-t:VSTest", filter]);
        var (bb, bs) = await Bare.BootAndStopAsync(image);
        var c2 = await sample.RunAsync(["build", "-t:ContainerTest", filter, noPool]);
        var b2 = await Bare.BootAndStopManyAsync(image, 2, bridged: true);
        if (i == 0)
            continue;
        containerTest.Add(c.Elapsed);
        vstest.Add(v.Elapsed);
        bareBootStop.Add(bb + bs);
        twoPrivate.Add(c2.Elapsed);
        bareTwoBridged.Add(b2);
        msbuildPeak = Math.Max(msbuildPeak, c.PeakRss);
        var times = Phases.Parse(c.Output);
        foreach (var (phase, targets) in Phases.Map)
            phases[phase].Add(TimeSpan.FromMilliseconds(targets.Sum(t => times.GetValueOrDefault(t))));
    }
    report.Add("dotnet build -t:ContainerTest (cached image; one test, 1 machine, host network, no pool)", containerTest);
    report.Add("dotnet build -t:VSTest (the same test, no machines)", vstest);
    report.Add("bare systemd-nspawn: boot to READY=1 and stop (SIGTERM), interleaved", bareBootStop);
    foreach (var (phase, times) in phases)
        report.Add("ContainerTest phase: " + phase, times);
    // Under sudo the build walks the user's folders at its end to give back what it wrote; here timed in process, changing nothing.
    var walks = new List<TimeSpan>();
    for (var i = 0; i < rounds; i++)
    {
        sw.Restart();
        Ownership.ReturnTo((65534, 65534), DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 3600, [Path.Combine(root, "tests/Sample")], chroots, recursive: true);
        walks.Add(sw.Elapsed);
    }
    report.Add("ContainerTest phase: ownership walk under sudo (in process, nothing to give back)", walks);
    report.Difference("seconds ContainerTest adds to a test run (1 machine)", containerTest, vstest, 1.5);
    report.Difference("our overhead, like for like: ContainerTest - VSTest - bare boot and stop (1 machine, host network)", containerTest,
        vstest.Select((v, k) => v + bareBootStop[k]).ToList(), 0.2);
    // A second machine and a private network: what they add to ContainerTest, against what they add to bare nspawn.
    report.Add("dotnet build -t:ContainerTest (the sample's 2 machines, private network, no pool)", twoPrivate);
    report.Add("bare systemd-nspawn: 2 machines at once on a bridge made for them, boot to READY=1 and stop", bareTwoBridged);
    var addedOurs = (Stats.Median(twoPrivate) - Stats.Median(containerTest)).TotalSeconds;
    var addedBare = (Stats.Median(bareTwoBridged) - Stats.Median(bareBootStop)).TotalSeconds;
    report.Note($"a second machine and a private network add {addedOurs:0.00} s to ContainerTest, {addedBare:0.00} s to bare nspawn: {addedOurs - addedBare:0.00} s of ours");
    report.Memory("peak RSS: the dotnet build process of ContainerTest, 1 machine", msbuildPeak);

    // A project that needs compiling (a new DefineConstants each run): the boot can overlap the build, so the whole should
    // take about the longer of build + tests and boot + tests, not their sum.
    var (compiled, buildAndTests) = (new List<TimeSpan>(), new List<TimeSpan>());
    // Interleaved, and as many rounds as above: with two, the median was the slower of two.
    for (var i = 0; i < rounds + 1; i++)
    {
        var c = await sample.RunAsync(["build", "-t:ContainerTest", filter, noPool, oneMachine, hostNetwork, $"-p:DefineConstants=BENCH_C{i}_{Environment.ProcessId}"]);
        var b = await sample.RunAsync(["build", "-t:Build;VSTest", filter, $"-p:DefineConstants=BENCH_B{i}_{Environment.ProcessId}"]);
        if (i == 0)
            continue;
        compiled.Add(c.Elapsed);
        buildAndTests.Add(b.Elapsed);
    }
    report.Add("ContainerTest, the project needs compiling", compiled);
    report.Add("build + VSTest, the project needs compiling (no machines)", buildAndTests);
    var longer = TimeSpan.FromTicks(Math.Max(Stats.Median(buildAndTests).Ticks, (Stats.Median(bareBootStop) + Stats.Median(vstest)).Ticks));
    report.Ratio("ContainerTest compiling against max(build + tests, boot + tests)", compiled, [longer], 1.1);
}

if (part == "overhead")
{
    await report.WriteAsync(Path.Combine(root, "artifacts/benchmark"));
    return;
}

// 4. Images: the check when nothing changed, an import from the cache, a full debootstrap.
List<TimeSpan>? importImport = null;
var checks = new List<TimeSpan>();
for (var i = 0; i < repeat * 5; i++)
{
    sw.Restart();
    await builder.EnsureAsync(spec, _ => { }, CancellationToken.None);
    checks.Add(sw.Elapsed);
}
report.Add("image check, nothing changed (in process)", checks, target: TimeSpan.FromMilliseconds(50));
// An import from the cache, into an empty chroots folder on a loop file system of its own (a new CI runner).
var cacheDir = Directory.CreateTempSubdirectory("nspawn-bench-cache-").FullName;
var runner = Path.Combine(Directory.CreateTempSubdirectory("nspawn-bench-runner-").FullName, "test_chroots");
var runnerStore = new BtrfsStore(runner, Path.Combine(runner, "btrfs.img"), Validate.Size(Settings.BtrfsImageSize.DefaultText, "size"));
try
{
    var cache = new ImageCache(cacheDir);
    sw.Restart();
    await cache.ExportAsync(image, spec, CancellationToken.None);
    report.Add("image export to the cache (btrfs send, gzip)", [sw.Elapsed]);
    await runnerStore.EnsureAsync(_ => { }, _ => { }, CancellationToken.None);
    var importer = new ImageBuilder(runner) { Cache = cache };
    var imports = new List<TimeSpan>();
    for (var i = 0; i < Math.Max(2, repeat / 3); i++)
    {
        sw.Restart();
        await importer.EnsureAsync(spec, _ => { }, CancellationToken.None);
        imports.Add(sw.Elapsed);
        await Subvolumes.RemoveTreeAsync(runner, importer.ImageDir(spec), CancellationToken.None);
    }
    report.Add("image import from the cache (btrfs receive)", imports);
    importImport = imports;
}
finally
{
    await runnerStore.UnmountAsync(CancellationToken.None);
    Directory.Delete(Path.GetDirectoryName(runner)!, recursive: true);
    Directory.Delete(cacheDir, recursive: true);
}
if (!quick && !report.Has("image: full debootstrap (first build)"))
{
    var fresh = TestImages.Spec("bench-" + Guid.NewGuid().ToString("N")[..6], "bookworm", spec.Mirror, spec.Variant, string.Join(',', spec.Include));
    sw.Restart();
    await builder.EnsureAsync(fresh, m => Console.WriteLine("  " + m), CancellationToken.None);
    report.Add("image: full debootstrap", [sw.Elapsed]);
    if (importImport is not null)
        report.Ratio("image import against a full debootstrap", importImport, [sw.Elapsed], 0.10);
    await Subvolumes.RemoveTreeAsync(builder.ChrootsDir, builder.ImageDir(fresh), CancellationToken.None);
}

// 5. A peer: podman booting the same root file system with systemd.
Console.WriteLine("podman");
report.Peer(await Podman.BootAsync(image, quick ? 3 : Math.Min(repeat, 5)));

// 6. Memory of the nspawn processes, for one and for eight machines.
var (rss1, _) = await Ours.NspawnMemoryAsync(image, 1);
var (rss8, _) = await Ours.NspawnMemoryAsync(image, 8);
report.Memory("peak RSS: nspawn processes, 1 machine", rss1);
report.Memory("peak RSS: nspawn processes, 8 machines", rss8);

await report.WriteAsync(Path.Combine(root, "artifacts/benchmark"));
