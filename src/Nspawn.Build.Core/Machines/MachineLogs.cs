using System.Text;

namespace Nspawn.Build;

/// <summary>
/// Saves a machine's journal (the guest's own, read inside it by its journalctl, which its agent or machined
/// starts there: never a program of the guest started by the host) and its console into its logs
/// folder, TestResults/nspawn/LOGICAL, before its snapshot goes. What cannot be read is reported, not fatal:
/// the stop goes on. The folder is the user's: it is made, written and given to the sudo user through handles
/// (<see cref="UserFolder"/>), never by path.
/// </summary>
internal static class MachineLogs
{
    public const string JournalFile = "journal.txt";
    public const string ConsoleFile = "console.txt";

    /// <summary>Enough for the journal of a long test run.</summary>
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    /// <summary>For a guest stuck booting or powering off, whose systemd may not answer: a stop waits no longer than this for it.</summary>
    public static readonly TimeSpan StuckLimit = TimeSpan.FromSeconds(5);

    /// <summary>Whether NspawnKeepLogs wants the logs of this machine, given whether something failed.</summary>
    public static bool Wanted(Machine machine, bool failed) =>
        machine.LogsDir is not null && machine.KeepLogs switch
        {
            KeepLogs.Always => true,
            KeepLogs.Failure => failed,
            _ => false,
        };

    /// <summary>Saves what can be read, within <paramref name="limit"/> for each; never throws for what the host refuses (a file, a command), but says it.</summary>
    public static async Task<SavedLogs> SaveAsync(Machine machine, TimeSpan limit, CancellationToken cancellationToken)
    {
        var dir = machine.LogsDir ?? throw new InvalidOperationException($"Machine {machine.Name} has no logs folder.");
        var files = new List<string>();
        var problems = new List<string>();
        try
        {
            using var folder = UserFolder.Make(machine.ResultsDir!, dir, Ownership.SudoUser);
            string? failure;
            if (!ProcessInfo.IsRunning(machine.LeaderPid, machine.LeaderStartTime))
            {
                folder.Remove(JournalFile);
                failure = "the guest's init is not running";
            }
            // The agent may listen before the machine counts as started (a boot that hangs later): it is asked first.
            else if (machine.Agent is not null || Agent.AgentSetup.IsListening(machine.Name))
                failure = await WriteAsync(folder, JournalFile, line => Agent.AgentCommand.RunLinesAsync(machine.Name, GuestCommand.Journal(), line, limit, cancellationToken));
            else if (machine.Unit is not null)
            {
                var argv = GuestCommand.AsUnit(machine, GuestCommand.NewUnitName("journal"), GuestCommand.Journal());
                failure = await WriteAsync(folder, JournalFile, line => HostCommand.RunLinesAsync(argv[0], argv.Skip(1).ToList(), line, cancellationToken, limit));
            }
            else
            {
                folder.Remove(JournalFile);
                failure = GuestCommand.NoChannel(machine).Message;
            }
            if (folder.HasFile(JournalFile))
                files.Add(Path.Combine(dir, JournalFile));
            if (failure is not null)
                problems.Add($"its journal could not be read: {failure}");

            if (machine.ConsoleFile is { } source && File.Exists(source))
            {
                await using (var writer = new StreamWriter(folder.Create(ConsoleFile), new UTF8Encoding(false)))
                    foreach (var line in ConsoleLog.Lines(source))
                        await writer.WriteLineAsync(line);
                files.Add(Path.Combine(dir, ConsoleFile));
            }
            else if (machine.Unit is { } unit)
            {
                // nspawn's output, the console, went to the unit's journal on the host.
                failure = await WriteAsync(folder, ConsoleFile, line => HostCommand.RunLinesAsync(ToolLocator.Require(Tool.Journalctl),
                    [$"--unit={unit}", "--output=cat", "--all", "--no-pager", "--quiet"], line, cancellationToken, limit));
                if (folder.HasFile(ConsoleFile))
                    files.Add(Path.Combine(dir, ConsoleFile));
                if (failure is not null)
                    problems.Add($"its console could not be read: {failure}");
            }
            else
            {
                folder.Remove(ConsoleFile);
                problems.Add("its console is gone");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NspawnException or System.ComponentModel.Win32Exception)
        {
            problems.Add(e.Message);
        }
        return new SavedLogs(machine, dir, files, problems);
    }

    /// <summary>Writes the command's output, line by line as plain text, into a new file; the reason when it failed (a file with some output is kept).</summary>
    private static async Task<string?> WriteAsync(UserFolder folder, string name, Func<Action<string>, Task<(int ExitCode, string StandardError)>> run)
    {
        (int ExitCode, string StandardError) result;
        bool empty;
        await using (var writer = new StreamWriter(folder.Create(name), new UTF8Encoding(false)))
        {
            try
            {
                result = await run(line => writer.WriteLine(ConsoleLog.Clean(line)));
            }
            catch (NspawnException e) when (e.Code == ErrorCodes.CommandFailed)
            {
                result = (-1, e.Message);
            }
            await writer.FlushAsync();
            empty = writer.BaseStream.Length == 0;
        }
        if (result.ExitCode == 0)
            return null;
        if (empty)
            folder.Remove(name);
        return $"exit code {result.ExitCode}: {result.StandardError.Trim()}";
    }
}
