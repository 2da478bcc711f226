using System.Text;
using CliWrap;
using Nspawn.Build;

namespace Nspawn.Testing;

/// <summary>
/// Streams a machine's console to a callback, line by line, from its start: the console file that nspawn
/// writes (direct launcher), or the unit's journal (systemd launcher). It ends once the machine is stopped.
/// </summary>
internal sealed class ConsoleFollower
{
    private readonly CancellationTokenSource _stopped = new();
    private readonly Action<string> _onLine;
    private Task _reading = Task.CompletedTask;
    // A journal follower may still be behind when the machine is stopped; the file is read to its end anyway.
    private TimeSpan _grace = TimeSpan.Zero;

    private ConsoleFollower(Action<string> onLine) => _onLine = onLine;

    /// <summary>Starts following; call it as root (the file is root's, the journal the system's).</summary>
    public static ConsoleFollower Start(Machine machine, Action<string> onLine)
    {
        var follower = new ConsoleFollower(onLine);
        if (machine.ConsoleFile is { } file)
        {
            // Opened now, as root: the handle keeps reading after privileges drop, and after the stop removes the file.
            var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            follower._reading = Task.Run(() => follower.ReadFileAsync(stream));
        }
        else if (machine.Unit is { } unit)
        {
            follower._grace = TimeSpan.FromMilliseconds(300);
            follower._reading = Cli.Wrap("journalctl")
                .WithArguments([$"--unit={unit}", "--follow", "--no-tail", "--output=cat", "--all", "--no-pager", "--quiet"])
                .WithStandardOutputPipe(PipeTarget.ToDelegate(follower.Deliver))
                .WithValidation(CommandResultValidation.None)
                .ExecuteAsync(follower._stopped.Token).Task;
        }
        return follower;
    }

    /// <summary>After the machine stopped: the rest of the file is delivered, a journal follower gets a moment for its last lines.</summary>
    public async Task StopAsync()
    {
        if (!_stopped.IsCancellationRequested)
            _stopped.CancelAfter(_grace);
        try
        {
            await _reading;
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ReadFileAsync(FileStream stream)
    {
        await using var _ = stream;
        var decoder = new UTF8Encoding(false).GetDecoder();
        var bytes = new byte[8192];
        var chars = new char[8192];
        var line = new StringBuilder();
        while (true)
        {
            var n = await stream.ReadAsync(bytes);
            if (n == 0)
            {
                // At the end of what nspawn wrote so far; once the machine is stopped, at the end of all.
                if (_stopped.IsCancellationRequested)
                    break;
                try
                {
                    await Task.Delay(100, _stopped.Token);
                }
                catch (OperationCanceledException)
                {
                }
                continue;
            }
            var count = decoder.GetChars(bytes, 0, n, chars, 0);
            for (var i = 0; i < count; i++)
                if (chars[i] == '\n')
                {
                    Deliver(line.ToString());
                    line.Clear();
                }
                else
                    line.Append(chars[i]);
        }
        if (line.Length > 0)
            Deliver(line.ToString());
    }

    private void Deliver(string line)
    {
        try
        {
            _onLine(ConsoleLog.Clean(line));
        }
        catch (Exception)
        {
            // The callback's own failure (a test's output helper after its test) must not end the stream, nor the process.
        }
    }
}
