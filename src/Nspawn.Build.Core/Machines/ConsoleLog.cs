using System.Text;
using System.Text.RegularExpressions;

namespace Nspawn.Build;

/// <summary>
/// A machine's console with the direct launcher: nspawn writes it to a root-only file of the state folder
/// itself, so that nothing has to drain it, it is whole (not only the last lines), and it outlives the build
/// (a kept machine). With the systemd launcher the console is in the unit's journal.
/// </summary>
internal static partial class ConsoleLog
{
    // Colours and cursor moves of the guest's status lines (also those cut short where systemd shortened a line), and the carriage returns of its terminal.
    [GeneratedRegex(@"\x1B\[[0-?]*[ -/]*[@-~]?|\x1B[@-Z\\-_]?|\r")]
    private static partial Regex TerminalControl();

    public static string PathOf(string machineName) => Path.Combine(MachineLauncher.StateDir, machineName + ".console");

    /// <summary>Makes the file, mode 0600; never an existing file or link (O_EXCL).</summary>
    public static void Create(string path)
    {
        using var _ = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
    }

    /// <summary>A console line as plain text.</summary>
    public static string Clean(string line) => TerminalControl().Replace(line, "");

    /// <summary>The last <paramref name="count"/> lines, as plain text; empty when there is no file.</summary>
    public static string Tail(string? path, int count)
    {
        if (path is null || !File.Exists(path))
            return "";
        var tail = new LineTail(count);
        foreach (var line in Lines(path))
            tail.Add(line);
        return tail.ToString();
    }

    /// <summary>Every line of the file, as plain text. Lines end at '\n' only: the guest's terminal ends them with "\r\r\n".</summary>
    public static IEnumerable<string> Lines(string path)
    {
        using var reader = new StreamReader(path, Encoding.UTF8);
        var line = new StringBuilder();
        var buffer = new char[8192];
        int n;
        while ((n = reader.Read(buffer, 0, buffer.Length)) > 0)
            for (var i = 0; i < n; i++)
                if (buffer[i] == '\n')
                {
                    yield return Clean(line.ToString());
                    line.Clear();
                }
                else
                    line.Append(buffer[i]);
        if (line.Length > 0)
            yield return Clean(line.ToString());
    }
}
