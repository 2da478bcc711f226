using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Nspawn.Build.Tests;

/// <summary>
/// When a test fails, the machine tells why: its journal and console are saved in the test results folder
/// (NspawnKeepLogs), named by the error and listed in the TRX; a boot failure keeps the whole console.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class FailureLogsTests(PackageFixture package) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-logs-").FullName;

    public Task InitializeAsync() => package.RequireImageAsync();

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    private const string FailingTests = """<Error Text="the tests failed" />""";

    // A precise timestamp (microseconds) and the guest's host name: its image's name, or on a private network its logical name.
    private static readonly Regex JournalLine = new(@"^\w{3} [ \d]\d \d\d:\d\d:\d\d\.\d{6} (bookworm|server) ", RegexOptions.Multiline);

    [Fact]
    public async Task A_failing_test_leaves_the_guests_journal_and_console_named_by_the_error_and_listed_in_the_TRX()
    {
        var results = Path.Combine(_dir, "results");
        var run = await package.RunSampleAsync(["-p:VSTestLogger=trx", $"-p:VSTestResultsDirectory={results}"], new Dictionary<string, string?> { ["SAMPLE_FAIL"] = "1" });
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains($"error NSPAWN0050: The tests failed or could not run (see above). Their machines were stopped; their logs are in {results}/nspawn.", run.Output);

        // The sample's machines are 'server' and 'client' on a private network (hostnames their logical names).
        var logs = Path.Combine(results, "nspawn/server");
        var journal = File.ReadAllText(Path.Combine(logs, "journal.txt"));
        // The line the failing test logged inside the machine with logger, with the guest's own lines from its boot on.
        Assert.Matches(@"server sample\[\d+\]: checking SAMPLE_FAIL\n", journal);
        Assert.Contains("systemd[1]: Reached target multi-user.target", journal);
        Assert.Matches(JournalLine, journal);
        var console = File.ReadAllText(Path.Combine(logs, "console.txt"));
        Assert.Contains("Welcome to Debian GNU/Linux 12 (bookworm)!", console);
        Assert.DoesNotContain('\x1b', console);
        Assert.DoesNotContain('\r', console);
        // The sample's failing test wrote the journal of its own duration to its output, which the test runner shows.
        run.AssertMatches(@"The journal of machine nspawn-server-[0-9a-f]{8} during the test:\s+\w{3} [ \d]\d [\d:.]+ server \S+\[\d+\]: ");

        XNamespace ns = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010";
        var trx = XDocument.Load(Assert.Single(Directory.GetFiles(results, "*.trx")));
        var listed = trx.Root!.Element(ns + "ResultSummary")!.Element(ns + "ResultFiles")!.Elements(ns + "ResultFile").Select(e => (string)e.Attribute("path")!).ToList();
        Assert.Equal(["nspawn/client/console.txt", "nspawn/client/journal.txt", "nspawn/server/console.txt", "nspawn/server/journal.txt"], listed.Order());
        var root = (string)trx.Root.Element(ns + "TestSettings")!.Element(ns + "Deployment")!.Attribute("runDeploymentRoot")!;
        Assert.Equal(journal, File.ReadAllText(Path.Combine(results, root, "In", "nspawn/server/journal.txt")));
        Leaks.AssertNone();
    }

    [Theory]
    [InlineData("", false, false)]
    [InlineData("", true, true)]
    [InlineData("always", false, true)]
    [InlineData("never", true, false)]
    public async Task NspawnKeepLogs_says_when_logs_are_kept(string keepLogs, bool testsFail, bool kept)
    {
        var consumer = new ConsumerProject(package, _dir, Repo.ChrootsDir, vstest: testsFail ? FailingTests : "");
        var run = await consumer.RunAsync(["-t:ContainerTest", $"-p:NspawnKeepLogs={keepLogs}"]);
        Assert.True((run.ExitCode != 0) == testsFail, run.ToString());
        var logs = Path.Combine(_dir, "TestResults/nspawn/default");
        if (kept)
        {
            Assert.Contains($"Saved the logs of 'default' (nspawn-default-", run.Output);
            Assert.Matches(JournalLine, File.ReadAllText(Path.Combine(logs, "journal.txt")));
            Assert.Contains("Welcome to Debian", File.ReadAllText(Path.Combine(logs, "console.txt")));
        }
        else
            Assert.False(Directory.Exists(Path.Combine(_dir, "TestResults")), "logs were kept:\n" + run.Output);
        if (testsFail)
            Assert.Contains($"error NSPAWN0050: The tests failed or could not run (see above). Their machines were stopped{(kept ? $"; their logs are in {_dir}/TestResults/nspawn." : ".")}", run.Output);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_boot_that_times_out_keeps_the_whole_console_not_only_its_last_lines()
    {
        // A guest whose boot prints 100 lines to the console, then waits for a service that never finishes.
        await using var chatty = await TempImage.WithUnitAsync("chatty", "chatty.service",
            "[Unit]\nBefore=multi-user.target\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'for i in $(seq 1 100); do echo \"chatty line $i\"; done > /dev/console; sleep 600'\n[Install]\nWantedBy=multi-user.target\n");
        var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir).RunAsync(
            ["-t:ContainerTest", $"-p:NspawnImage={chatty.Name}", "-p:NspawnSuite=bookworm", "-p:NspawnBootTimeout=20"]);
        Assert.NotEqual(0, run.ExitCode);
        var logs = Path.Combine(_dir, "TestResults/nspawn/default");
        Assert.Contains($"error NSPAWN0032: Machine 'default' (nspawn-default-", run.Output);
        Assert.Contains($"The whole console is in {logs}. Last console lines:", run.Output);
        Assert.DoesNotMatch(new Regex(@"^\s*chatty line 1\s*$", RegexOptions.Multiline), run.Output);

        var console = File.ReadAllLines(Path.Combine(logs, "console.txt"));
        Assert.Equal(Enumerable.Range(1, 100).Select(i => $"chatty line {i}"), console.Where(l => l.StartsWith("chatty line")));
        // Its systemd still answers while it boots: the journal says what it waits for.
        Assert.Contains("Starting chatty.service", File.ReadAllText(Path.Combine(logs, "journal.txt")));
        Assert.DoesNotContain("Passed!", run.Output);
        Leaks.AssertNone();
    }
}
