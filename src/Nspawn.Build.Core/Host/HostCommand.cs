using CliWrap;
using CliWrap.Buffered;

namespace Nspawn.Build;

/// <summary>
/// Runs a host tool to its end with a time limit, so that no step can hang a build; a tool past its limit is
/// killed and reported as a coded error that names the step.
/// </summary>
internal static class HostCommand
{
    /// <summary>Enough for any quick step (mount, btrfs, systemctl); the long ones (debootstrap) have limits of their own.</summary>
    public static readonly TimeSpan DefaultLimit = TimeSpan.FromMinutes(5);

    /// <summary>Runs the tool and returns its result whatever its exit code.</summary>
    public static async Task<BufferedCommandResult> RunAsync(string tool, IReadOnlyList<string> args, CancellationToken cancellationToken, TimeSpan? limit = null)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit ?? DefaultLimit);
        try
        {
            return await Cli.Wrap(tool).WithArguments(args).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new NspawnException(ErrorCodes.CommandFailed,
                $"'{Describe(tool, args)}' did not finish within {(limit ?? DefaultLimit).TotalSeconds:0} s and was killed.");
        }
    }

    /// <summary>Runs the tool with each line of its standard output going to <paramref name="onLine"/> (output too large to buffer); returns its exit code and standard error.</summary>
    public static async Task<(int ExitCode, string StandardError)> RunLinesAsync(string tool, IReadOnlyList<string> args, Action<string> onLine,
        CancellationToken cancellationToken, TimeSpan? limit = null)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit ?? DefaultLimit);
        var stderr = new System.Text.StringBuilder();
        try
        {
            var result = await Cli.Wrap(tool).WithArguments(args).WithValidation(CommandResultValidation.None)
                .WithStandardOutputPipe(PipeTarget.ToDelegate(onLine)).WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr))
                .ExecuteAsync(timeout.Token);
            return (result.ExitCode, stderr.ToString());
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new NspawnException(ErrorCodes.CommandFailed,
                $"'{Describe(tool, args)}' did not finish within {(limit ?? DefaultLimit).TotalSeconds:0} s and was killed.");
        }
    }

    /// <summary>
    /// Runs a command whose pipes the caller set (a stream in or out) to its end, whatever its exit code; past
    /// <paramref name="limit"/> it is killed and NSPAWN0024 names <paramref name="what"/>.
    /// </summary>
    public static async Task<CommandResult> RunPipedAsync(Command command, string what, TimeSpan limit, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit);
        try
        {
            return await command.WithValidation(CommandResultValidation.None).ExecuteAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new NspawnException(ErrorCodes.CommandFailed, $"{what} did not finish within {limit.TotalSeconds:0} s and was killed.");
        }
    }

    /// <summary>Runs the tool and throws <paramref name="code"/>, with its output, when it fails.</summary>
    public static async Task<string> RunCheckedAsync(string tool, IReadOnlyList<string> args, string code, CancellationToken cancellationToken, TimeSpan? limit = null)
    {
        var result = await RunAsync(tool, args, cancellationToken, limit);
        if (result.ExitCode != 0)
            throw new NspawnException(code,
                $"'{Describe(tool, args)}' failed with exit code {result.ExitCode}: {(result.StandardError + result.StandardOutput).Trim()}");
        return result.StandardOutput;
    }

    private static string Describe(string tool, IReadOnlyList<string> args) => $"{tool} {string.Join(' ', args)}";
}
