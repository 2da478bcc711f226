using System.ComponentModel;
using CliWrap.Exceptions;
using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// The base of our tasks: runs the task's work with MSBuild's cancellation (Ctrl+C) as a token, and turns
/// every expected failure (ours, a file operation, a command that could not run) into one coded error.
/// </summary>
public abstract class NspawnTask : Microsoft.Build.Utilities.Task, ICancelableTask
{
    private readonly CancellationTokenSource _cancel = new();

    public void Cancel() => _cancel.Cancel();

    public sealed override bool Execute()
    {
        try
        {
            ExecuteAsync(_cancel.Token).GetAwaiter().GetResult();
        }
        catch (NspawnException e)
        {
            LogError(e);
        }
        catch (OperationCanceledException) when (_cancel.IsCancellationRequested)
        {
            LogError(new NspawnException(ErrorCodes.Canceled, $"{GetType().Name} was canceled; what it had started was stopped."));
        }
        catch (Exception e) when (Expected(e) is { } coded)
        {
            LogError(coded);
        }
        return !Log.HasLoggedErrors;
    }

    private protected abstract Task ExecuteAsync(CancellationToken cancellationToken);

    /// <summary>Progress a user must see: high importance shows in the console and in Terminal Logger's summary.</summary>
    private protected void Progress(string message) => Log.LogMessage(MessageImportance.High, message);

    private protected void LogError(NspawnException e) => Log.LogError(null, e.Code, null, null, 0, 0, 0, 0, e.Message);

    private protected void LogWarning(NspawnWarning w) => Log.LogWarning(null, w.Code, null, null, 0, 0, 0, 0, w.Message);

    /// <summary>Each failure once: a coded error when expected, else with its stack (a bug).</summary>
    private protected void LogFailures(IEnumerable<Exception> failures)
    {
        foreach (var failure in failures)
            if (Expected(failure) is { } coded)
                LogError(coded);
            else
                Log.LogErrorFromException(failure, showStackTrace: true);
    }

    /// <summary>A failure of the host rather than of our code, as a coded error; null for a bug, which MSBuild reports with its stack.</summary>
    private protected NspawnException? Expected(Exception e) => e switch
    {
        NspawnException coded => coded,
        IOException or UnauthorizedAccessException => new NspawnException(ErrorCodes.HostFileFailed,
            $"{GetType().Name}: a file operation failed: {e.Message} Check the path's permissions and the free space, then run the build again.", e),
        Win32Exception or CliWrapException => new NspawnException(ErrorCodes.CommandFailed,
            $"{GetType().Name}: a command could not run: {e.Message}", e),
        _ => null,
    };
}
