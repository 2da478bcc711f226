using System.Xml.Linq;
using Microsoft.Build.Utilities;
using Nspawn.Build.Tasks;

namespace Nspawn.Build.Tests;

/// <summary>The pure parts of 'when a test fails': settings, the journal's command line, the console as text, the TRX.</summary>
[Trait("Category", "Unit")]
public sealed class FailureLogsUnitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-logs-unit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static LaunchOptions Resolve(string keepLogs = "", string keepOnFailure = "", string resultsDir = "") =>
        SettingsResolver.Resolve(new ProjectSettings
        {
            BaseDir = "/home/u/proj", ChrootsDir = "/c", EphemeralMode = "snapshot", KeepLogs = keepLogs, KeepOnFailure = keepOnFailure, ResultsDir = resultsDir,
        }).Machines[0];

    [Fact]
    public void Logs_go_to_the_projects_TestResults_on_failure_by_default_and_machines_are_not_kept()
    {
        var options = Resolve();
        Assert.Equal((KeepLogs.Failure, false, "/home/u/proj/TestResults"), (options.KeepLogs, options.KeepOnFailure, options.ResultsDir));
        Assert.Equal("/home/u/proj/TestResults/nspawn/default", Machine.Starting(options, null, []).LogsDir);
    }

    [Theory]
    [InlineData("/srv/results", "/srv/results")]
    [InlineData("out/results/", "/home/u/proj/out/results")]
    public void VSTestResultsDirectory_moves_them(string written, string resolved) => Assert.Equal(resolved, Resolve(resultsDir: written).ResultsDir);

    [Fact]
    public void The_settings_reach_the_machine_record_through_the_resolved_items()
    {
        var options = ResolvedItems.ToLaunch(ResolvedItems.FromLaunch(Resolve("Always", "true", "/srv/r")));
        var machine = MachinesFile.DeserializeOne(MachinesFile.SerializeOne(Machine.Starting(options, null, [])));
        Assert.Equal((KeepLogs.Always, true, "/srv/r/nspawn/default"), (machine.KeepLogs, machine.KeepOnFailure, machine.LogsDir));
    }

    [Theory]
    [InlineData("sometimes", "", "NspawnKeepLogs 'sometimes' is not one of: failure, always, never.")]
    [InlineData("", "maybe", "NspawnKeepOnFailure 'maybe' is not one of: true, false.")]
    public void Bad_values_name_the_property(string keepLogs, string keepOnFailure, string message)
    {
        var e = Assert.Throws<NspawnException>(() => Resolve(keepLogs, keepOnFailure));
        Assert.Equal((ErrorCodes.BadOption, message), (e.Code, e.Message));
    }

    [Theory]
    [InlineData("failure", false, false)]
    [InlineData("failure", true, true)]
    [InlineData("always", false, true)]
    [InlineData("never", true, false)]
    public void NspawnKeepLogs_decides_when_logs_are_saved(string keep, bool failed, bool saved)
    {
        var machine = Machine.Starting(Resolve(keepLogs: keep), null, []);
        Assert.Equal(saved, MachineLogs.Wanted(machine, failed));
        Assert.False(MachineLogs.Wanted(machine with { ResultsDir = null }, failed: true), "a test's own machine has no logs folder");
    }

    [Fact]
    public void The_journal_is_read_in_the_guest_as_a_unit_of_its_systemd()
    {
        var direct = new Machine("web", "nspawn-web-1", "bookworm", "/c/bookworm", 4242, 1, 4241, 1, null, null, []);
        // Without machined, only the agent runs it: the host starts no program of the guest.
        Assert.Throws<NspawnException>(() => GuestCommand.AsUnit(direct, "u", GuestCommand.Journal()));
        var registered = direct with { Unit = "nspawn-web-1.service" };
        Assert.Equal(["systemd-run", "--machine=nspawn-web-1"], GuestCommand.AsUnit(registered, "u", GuestCommand.Journal()).Take(2));
        Assert.Equal(["journalctl", "--no-pager", "--quiet", "--all", "--output=short-precise", "--since=@1700000000.250", "--unit=dbus.service"],
            GuestCommand.Journal(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_250), "dbus.service"));
        Assert.Equal("nsenter -t 4242 --all -- /bin/bash -l", GuestCommand.Shell(direct));
        Assert.Equal("machinectl shell nspawn-web-1", GuestCommand.Shell(registered));
    }

    [Fact]
    public void The_console_is_kept_as_plain_text_lines()
    {
        var file = Path.Combine(_dir, "console");
        File.WriteAllText(file, "Welcome to \x1b[1mDebian\x1b[0m!\r\r\n[\x1b[0;32m  OK  \x1b[0m] Started x.\r\r\n" + string.Concat(Enumerable.Range(1, 40).Select(i => $"line {i}\r\n")) + "no newline");
        var lines = ConsoleLog.Lines(file).ToList();
        Assert.Equal(["Welcome to Debian!", "[  OK  ] Started x."], lines.Take(2));
        Assert.Equal(43, lines.Count);
        Assert.Equal(string.Join('\n', Enumerable.Range(12, 29).Select(i => $"line {i}").Append("no newline")), ConsoleLog.Tail(file, 30));
        Assert.Equal("", ConsoleLog.Tail(Path.Combine(_dir, "none"), 30));
        // systemd shortens a long status line to the terminal's width, cutting its colour codes.
        Assert.Equal("[  OK  ] Started e2scrub_all.timer…etadata Check", ConsoleLog.Clean("[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39me2scrub_all.timer\x1b…etadata Check"));
        Assert.Equal("Started …", ConsoleLog.Clean("Started \x1b[0;1…"));
    }

    [Fact]
    public void Console_files_are_new_and_root_only()
    {
        var file = Path.Combine(_dir, "new.console");
        ConsoleLog.Create(file);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        Assert.Throws<IOException>(() => ConsoleLog.Create(file));
        var link = Path.Combine(_dir, "link.console");
        File.CreateSymbolicLink(link, Path.Combine(_dir, "elsewhere"));
        Assert.Throws<IOException>(() => ConsoleLog.Create(link));
        Assert.False(File.Exists(Path.Combine(_dir, "elsewhere")));
    }

    [Fact]
    public void Folders_in_the_results_folder_are_never_links()
    {
        var results = Path.Combine(_dir, "TestResults");
        using (var made = UserFolder.Make(results, Path.Combine(results, "nspawn/web"), null))
            Assert.Equal([results, Path.Combine(results, "nspawn"), Path.Combine(results, "nspawn/web")], made.Made);
        using (var again = UserFolder.Make(results, Path.Combine(results, "nspawn/web"), null))
            Assert.Empty(again.Made);
        var elsewhere = Directory.CreateDirectory(Path.Combine(_dir, "elsewhere")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(results, "nspawn/db"), elsewhere);
        Assert.Equal(ErrorCodes.HostFileFailed, Assert.Throws<NspawnException>(() => UserFolder.Make(results, Path.Combine(results, "nspawn/db"), null)).Code);
        Assert.Null(UserFolder.TryOpen(results, Path.Combine(results, "nspawn/db")));
        // A file that is a link is replaced, not written through.
        var target = Path.Combine(elsewhere, "precious");
        File.WriteAllText(target, "keep");
        File.CreateSymbolicLink(Path.Combine(results, "nspawn/web/journal.txt"), target);
        using (var web = UserFolder.Make(results, Path.Combine(results, "nspawn/web"), null))
        using (var file = web.Create("journal.txt"))
            file.WriteByte((byte)'x');
        Assert.Equal("keep", File.ReadAllText(target));
        Assert.Null(new FileInfo(Path.Combine(results, "nspawn/web/journal.txt")).LinkTarget);
    }

    // The TRX that VSTest writes, cut down to what matters here.
    private const string Trx = """
        <?xml version="1.0" encoding="utf-8"?>
        <TestRun id="a0a17212-fe2d-4ec7-b9cf-e5ec1fd37f30" name="@vm 2026-11-30 01:09:12" xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010">
          <TestSettings name="default" id="ab3ca6a3-977d-41d9-8d53-b40ef134d404">
            <Deployment runDeploymentRoot="_vm_2026-11-30_01_09_12" />
          </TestSettings>
          <ResultSummary outcome="Failed">
            <Counters total="2" executed="2" passed="1" failed="1" />
            <CollectorDataEntries />
          </ResultSummary>
        </TestRun>
        """;

    [Fact]
    public void Saved_logs_are_listed_in_the_runs_TRX_as_VSTest_lists_attachments()
    {
        var results = Directory.CreateDirectory(Path.Combine(_dir, "TestResults")).FullName;
        var logs = Directory.CreateDirectory(Path.Combine(results, "nspawn/web")).FullName;
        File.WriteAllText(Path.Combine(logs, "journal.txt"), "journal\n");
        File.WriteAllText(Path.Combine(logs, "console.txt"), "console\n");
        var trx = Path.Combine(results, "run.trx");
        File.WriteAllText(trx, Trx);
        var old = Path.Combine(results, "old.trx");
        File.WriteAllText(old, Trx);
        File.SetLastWriteTimeUtc(old, DateTime.UtcNow.AddHours(-1));
        string[] files = [Path.Combine(logs, "journal.txt"), Path.Combine(logs, "console.txt")];

        Assert.Equal([trx], TrxAttachments.Add(results, files, DateTime.UtcNow.AddMinutes(-1)));
        TrxAttachments.Add(results, files, DateTime.UtcNow.AddMinutes(-1));

        XNamespace ns = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010";
        var summary = XDocument.Load(trx).Root!.Element(ns + "ResultSummary")!;
        Assert.Equal(["Counters", "ResultFiles", "CollectorDataEntries"], summary.Elements().Select(e => e.Name.LocalName));
        Assert.Equal(["nspawn/web/journal.txt", "nspawn/web/console.txt"], summary.Element(ns + "ResultFiles")!.Elements(ns + "ResultFile").Select(e => (string)e.Attribute("path")!));
        // Where TRX readers look for a run's files: RUN/In, RUN being the run's deployment root.
        Assert.Equal("journal\n", File.ReadAllText(Path.Combine(results, "_vm_2026-11-30_01_09_12/In/nspawn/web/journal.txt")));
        Assert.DoesNotContain("ResultFile", File.ReadAllText(old));
    }

    [Fact]
    public void A_stop_report_says_where_the_logs_are()
    {
        var machine = Machine.Starting(Resolve(resultsDir: "/srv/r"), null, []);
        Assert.Equal("'default' (" + machine.Name + "): journal.txt and console.txt in /srv/r/nspawn/default",
            new SavedLogs(machine, machine.LogsDir!, ["/srv/r/nspawn/default/journal.txt", "/srv/r/nspawn/default/console.txt"], []).ToString());
        Assert.Contains("(its journal could not be read: gone)", new SavedLogs(machine, machine.LogsDir!, [], ["its journal could not be read: gone"]).ToString());
    }

    [Fact]
    public void A_kept_machine_says_how_to_get_in_and_how_to_stop_it()
    {
        var machine = new Machine("web", "nspawn-web-1", "bookworm", "/c/bookworm", 4242, 1, 4241, 1, null, null, []);
        var text = KeptMachines.Describe(machine, "/home/u/my proj/app.csproj");
        Assert.Contains("nsenter -t 4242 --all -- /bin/bash -l", text);
        Assert.Contains("dotnet build \"/home/u/my proj/app.csproj\" -t:NspawnStopKept", text);
    }

    [Fact]
    public void The_resolve_task_takes_the_new_properties()
    {
        var engine = new FakeBuildEngine();
        var task = new ResolveNspawnSettings
        {
            BuildEngine = engine, BaseDir = "/p", ChrootsDir = "/srv/test_chroots", EphemeralMode = "snapshot", CheckHost = false,
            KeepLogs = "never", KeepOnFailure = "true", ResultsDir = "/srv/results", Machines = [new TaskItem("web")],
        };
        Assert.True(task.Execute(), string.Join('\n', engine.ErrorLines));
        var options = ResolvedItems.ToLaunch(Assert.Single(task.ResolvedMachines));
        Assert.Equal((KeepLogs.Never, true, "/srv/results"), (options.KeepLogs, options.KeepOnFailure, options.ResultsDir));
    }
}
