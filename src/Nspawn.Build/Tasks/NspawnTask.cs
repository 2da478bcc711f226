using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// The base of our tasks: turns expected failures into coded errors, and MSBuild's cancellation (Ctrl+C)
/// into a token. With ValidateOnly, a task only checks its inputs, so that ContainerTest can reject bad
/// input before anything is created.
/// </summary>
public abstract class NspawnTask : Microsoft.Build.Utilities.Task, ICancelableTask
{
    private readonly CancellationTokenSource _cancel = new();

    public bool ValidateOnly { get; set; }

    public void Cancel() => _cancel.Cancel();

    public override bool Execute()
    {
        try
        {
            if (ValidateOnly)
                Check();
            else
                ExecuteAsync(_cancel.Token).GetAwaiter().GetResult();
        }
        catch (NspawnException e)
        {
            Log.LogError(null, e.Code, null, null, 0, 0, 0, 0, e.Message);
        }
        catch (OperationCanceledException) when (_cancel.IsCancellationRequested)
        {
            Log.LogError(null, ErrorCodes.Canceled, null, null, 0, 0, 0, 0, $"{GetType().Name} was canceled; what it had started was stopped.");
        }
        return !Log.HasLoggedErrors;
    }

    /// <summary>Checks every input and the host (root, tools) without changing anything.</summary>
    protected abstract void Check();

    protected abstract Task ExecuteAsync(CancellationToken cancellationToken);

    /// <summary>Progress a user must see: high importance shows in the console and in Terminal Logger's summary.</summary>
    protected void Progress(string message) => Log.LogMessage(MessageImportance.High, message);
}
