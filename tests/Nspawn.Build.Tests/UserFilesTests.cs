using System.Runtime.InteropServices;

namespace Nspawn.Build.Tests;

/// <summary>
/// What the build writes as root in the test results folder, which is the user's to change at any time: the saved logs
/// and the TRX attachments. Each test plants for real what a user could (a FIFO where a file is read or written, a link
/// where a folder is made or a log is read, a folder swapped for a link while logs are being saved) and checks that
/// nothing blocks, nothing outside is read or changed.
/// </summary>
[Trait("Category", "Unit")]
public sealed class UserFilesTests : IDisposable
{
    private const uint User = 4242;
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-userfiles-").FullName;
    private readonly List<string> _fifos = [];

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open(string path, int flags);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int Close(int fd);

    public void Dispose()
    {
        // Lets go of a step that blocked on a FIFO (on code that opens it): an end opened without waiting wakes the other.
        foreach (var fifo in _fifos)
            foreach (var flags in new[] { 0x800, 0x801 })
                if (Open(fifo, flags) is var fd and >= 0)
                    Close(fd);
        Directory.Delete(_dir, recursive: true);
    }

    private string Fifo(string path)
    {
        var run = Shell.RunAsync("mkfifo", [path]).GetAwaiter().GetResult();
        Assert.True(run.ExitCode == 0, run.ToString());
        _fifos.Add(path);
        return path;
    }

    private string Results() => Directory.CreateDirectory(Path.Combine(_dir, "TestResults")).FullName;

    private string Outside(string content = "secret\n")
    {
        var outside = Directory.CreateDirectory(Path.Combine(_dir, "outside")).FullName;
        File.WriteAllText(Path.Combine(outside, "secret.txt"), content);
        return outside;
    }

    private const string Trx = """
        <?xml version="1.0" encoding="utf-8"?>
        <TestRun id="a0a17212-fe2d-4ec7-b9cf-e5ec1fd37f30" name="@vm" xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010">
          <TestSettings name="default" id="ab3ca6a3-977d-41d9-8d53-b40ef134d404">
            <Deployment runDeploymentRoot="run" />
          </TestSettings>
          <ResultSummary outcome="Failed" />
        </TestRun>
        """;

    private static IReadOnlyList<string> Add(string results, IReadOnlyList<string> files) =>
        // Bounded only to turn a hang into a failure.
        Task.Run(() => TrxAttachments.Add(results, files, DateTime.UtcNow.AddMinutes(-1))).WaitAsync(Hang).GetAwaiter().GetResult();

    private static IEnumerable<string> Copied(string results) =>
        Directory.Exists(Path.Combine(results, "run/In")) ? Directory.EnumerateFiles(Path.Combine(results, "run/In"), "*", SearchOption.AllDirectories) : [];

    [Fact]
    public void A_FIFO_planted_as_a_TRX_file_is_never_opened()
    {
        var results = Results();
        var logs = Directory.CreateDirectory(Path.Combine(results, "nspawn/web")).FullName;
        File.WriteAllText(Path.Combine(logs, "journal.txt"), "journal\n");
        Fifo(Path.Combine(results, "a.trx"));

        Assert.Empty(Add(results, [Path.Combine(logs, "journal.txt")]));
        Assert.Equal(0x1000u, FileStatus.Of(Path.Combine(results, "a.trx"))!.Type);
    }

    [Fact]
    public void A_FIFO_planted_as_a_saved_log_or_where_its_copy_goes_is_never_opened()
    {
        var results = Results();
        var logs = Directory.CreateDirectory(Path.Combine(results, "nspawn/web")).FullName;
        File.WriteAllText(Path.Combine(results, "run.trx"), Trx);
        Fifo(Path.Combine(logs, "journal.txt"));
        File.WriteAllText(Path.Combine(logs, "console.txt"), "console\n");
        var target = Directory.CreateDirectory(Path.Combine(results, "run/In/nspawn/web")).FullName;
        Fifo(Path.Combine(target, "console.txt"));

        Add(results, [Path.Combine(logs, "journal.txt"), Path.Combine(logs, "console.txt")]);

        Assert.Equal("console\n", File.ReadAllText(Path.Combine(target, "console.txt")));
        Assert.Null(FileStatus.Of(Path.Combine(target, "journal.txt")));
        Assert.DoesNotContain("journal.txt", File.ReadAllText(Path.Combine(results, "run.trx")));
    }

    [Fact]
    public void A_link_planted_as_a_saved_log_or_on_its_way_is_never_followed()
    {
        var results = Results();
        var outside = Outside();
        var logs = Directory.CreateDirectory(Path.Combine(results, "nspawn/web")).FullName;
        File.WriteAllText(Path.Combine(results, "run.trx"), Trx);
        File.CreateSymbolicLink(Path.Combine(logs, "journal.txt"), Path.Combine(outside, "secret.txt"));
        File.WriteAllText(Path.Combine(outside, "console.txt"), "secret\n");
        Directory.CreateSymbolicLink(Path.Combine(results, "nspawn/db"), outside);

        Add(results, [Path.Combine(logs, "journal.txt"), Path.Combine(results, "nspawn/db/console.txt")]);

        Assert.All(Copied(results), file => Assert.DoesNotContain("secret", File.ReadAllText(file)));
        Assert.Equal(["console.txt", "secret.txt"], Directory.EnumerateFiles(outside).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void A_TRX_file_that_is_a_link_is_left_as_it_is()
    {
        var results = Results();
        var outside = Outside(Trx);
        var logs = Directory.CreateDirectory(Path.Combine(results, "nspawn/web")).FullName;
        File.WriteAllText(Path.Combine(logs, "journal.txt"), "journal\n");
        File.CreateSymbolicLink(Path.Combine(results, "run.trx"), Path.Combine(outside, "secret.txt"));

        Assert.Empty(Add(results, [Path.Combine(logs, "journal.txt")]));
        Assert.Equal(Trx, File.ReadAllText(Path.Combine(outside, "secret.txt")));
    }

    [Fact]
    public async Task A_link_planted_where_the_log_folder_is_made_is_refused()
    {
        var results = Results();
        var outside = Outside();
        Directory.CreateSymbolicLink(Path.Combine(results, "nspawn"), outside);
        var console = Path.Combine(_dir, "console");
        File.WriteAllText(console, "console\n");
        var machine = new Machine("web", "nspawn-web-1", "bookworm", "/c/bookworm", 1, 1, 1, 1, null, null, []) { ResultsDir = results, ConsoleFile = console };

        var saved = await MachineLogs.SaveAsync(machine, TimeSpan.FromSeconds(30), CancellationToken.None).WaitAsync(Hang);

        Assert.Empty(saved.Files);
        Assert.Contains(saved.Problems, p => p.Contains("is a link"));
        Assert.Equal(["secret.txt"], Directory.EnumerateFileSystemEntries(outside).Select(Path.GetFileName));
    }

    [Fact]
    public void What_is_made_goes_to_the_user_by_handle_and_what_was_there_stays_as_it_was()
    {
        var results = Results();
        var outside = Outside();
        var existing = Directory.CreateDirectory(Path.Combine(results, "nspawn")).FullName;
        using (var folder = UserFolder.Make(results, Path.Combine(results, "nspawn/web"), (User, User)))
        {
            // Swapped for a link once made: the folder held is still the one written in.
            Directory.Move(folder.Path, folder.Path + ".real");
            Directory.CreateSymbolicLink(folder.Path, outside);
            using (var file = folder.Create("secret.txt"))
                file.WriteByte((byte)'x');
            Assert.Equal([Path.Combine(results, "nspawn/web")], folder.Made);
        }
        Assert.Equal("secret\n", File.ReadAllText(Path.Combine(outside, "secret.txt")));
        Assert.Equal("x", File.ReadAllText(Path.Combine(results, "nspawn/web.real/secret.txt")));
        Assert.Equal(User, FileStatus.Of(Path.Combine(results, "nspawn/web.real/secret.txt"))!.Uid);
        Assert.Equal(User, FileStatus.Of(Path.Combine(results, "nspawn/web.real"))!.Uid);
        Assert.Equal(0u, FileStatus.Of(existing)!.Uid);
        Assert.Equal(0u, FileStatus.Of(outside)!.Uid);
    }

    [Fact]
    public async Task A_log_folder_swapped_for_a_link_while_logs_are_saved_changes_nothing_outside()
    {
        var results = Results();
        await Shell.RunAsync("chown", [$"{User}:{User}", results]);
        var outside = Directory.CreateDirectory(Path.Combine(_dir, "outside")).FullName;
        File.WriteAllText(Path.Combine(outside, "console.txt"), "precious\n");
        // The console is read as the machine's (a FIFO here, so that the test knows when the folder is made and in use).
        var console = Fifo(Path.Combine(_dir, "console"));
        var save = Shell.RunAsync(ConsumerProject.Dotnet, ["exec", typeof(Program).Assembly.Location, "save-logs", results, console],
            new Dictionary<string, string?> { ["SUDO_UID"] = $"{User}", ["SUDO_GID"] = $"{User}", ["SUDO_USER"] = null }, "/");
        var logs = Path.Combine(results, "nspawn/web");
        Assert.True(await Shell.WaitUntilAsync(() => File.Exists(Path.Combine(logs, "console.txt")) || save.IsCompleted, Hang), "the console was never written");
        if (save.IsCompleted)
            Assert.Fail((await save).ToString());

        // The user swaps the logs folder for a link to a folder they may not change.
        Directory.Move(logs, logs + ".real");
        Directory.CreateSymbolicLink(logs, outside);
        await Task.Run(() => File.WriteAllText(console, "booted\n")).WaitAsync(Hang);
        var run = await save.WaitAsync(Hang);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("precious\n", File.ReadAllText(Path.Combine(outside, "console.txt")));
        Assert.Equal(0u, FileStatus.Of(Path.Combine(outside, "console.txt"))!.Uid);
        Assert.Equal(0u, FileStatus.Of(outside)!.Uid);
        Assert.Equal("booted\n", File.ReadAllText(Path.Combine(logs + ".real", "console.txt")));
        Assert.Equal(User, FileStatus.Of(Path.Combine(logs + ".real", "console.txt"))!.Uid);
        Assert.Equal(User, FileStatus.Of(logs + ".real")!.Uid);
    }
}
