using System.Collections;
using Microsoft.Build.Framework;

namespace Nspawn.Build.Tests;

/// <summary>
/// A build engine for running a task directly in a test: it keeps what the task logged and registered, and disposes
/// what was registered for the build's lifetime at <see cref="EndBuild"/>, as MSBuild does when a build ends.
/// </summary>
public sealed class FakeBuildEngine : IBuildEngine4
{
    private readonly Dictionary<object, (object Obj, RegisteredTaskObjectLifetime Lifetime, long Order)> _registered = new();
    private long _registrations;

    public List<BuildErrorEventArgs> Errors { get; } = [];
    public List<BuildWarningEventArgs> Warnings { get; } = [];
    public List<BuildMessageEventArgs> Messages { get; } = [];

    public bool ContinueOnError => false;
    public int LineNumberOfTaskNode => 0;
    public int ColumnNumberOfTaskNode => 0;
    public string ProjectFileOfTaskNode => "test.proj";
    public bool IsRunningMultipleNodes => false;

    public void LogErrorEvent(BuildErrorEventArgs e) => Errors.Add(e);
    public void LogWarningEvent(BuildWarningEventArgs e) => Warnings.Add(e);
    public void LogMessageEvent(BuildMessageEventArgs e) => Messages.Add(e);
    public void LogCustomEvent(CustomBuildEventArgs e) { }

    public bool BuildProjectFile(string projectFileName, string[] targetNames, IDictionary globalProperties, IDictionary targetOutputs) => false;
    public bool BuildProjectFile(string projectFileName, string[] targetNames, IDictionary globalProperties, IDictionary targetOutputs, string toolsVersion) => false;
    public bool BuildProjectFilesInParallel(string[] projectFileNames, string[] targetNames, IDictionary[] globalProperties, IDictionary[] targetOutputsPerProject, string[] toolsVersion, bool useResultsCache, bool unloadProjectsOnCompletion) => false;
    public BuildEngineResult BuildProjectFilesInParallel(string[] projectFileNames, string[] targetNames, IDictionary[] globalProperties, IList<string>[] removeGlobalProperties, string[] toolsVersion, bool returnTargetOutputs) => default;
    public void Yield() { }
    public void Reacquire() { }

    // As MSBuild: the first object registered under a key stays.
    public void RegisterTaskObject(object key, object obj, RegisteredTaskObjectLifetime lifetime, bool allowEarlyCollection) => _registered.TryAdd(key, (obj, lifetime, _registrations++));
    public object? GetRegisteredTaskObject(object key, RegisteredTaskObjectLifetime lifetime) => _registered.TryGetValue(key, out var r) ? r.Obj : null;
    public object? UnregisterTaskObject(object key, RegisteredTaskObjectLifetime lifetime) => _registered.Remove(key, out var r) ? r.Obj : null;

    /// <summary>
    /// Ends the build as MSBuild does (RegisteredTaskObjectCacheBase.DisposeCacheObjects): what is registered for the
    /// build's lifetime is disposed if it is IDisposable (an object that is only IAsyncDisposable is not), each one even
    /// when one before threw (MSBuild eats the exception: nobody is left to log to), and then forgotten. The order is
    /// registration order rearranged by <paramref name="order"/>: MSBuild's own changes from process to process, so a
    /// test may choose the worst one. What the disposals threw is returned, for a test to look at.
    /// </summary>
    public IReadOnlyList<Exception> EndBuild(Func<IReadOnlyList<object>, IEnumerable<object>>? order = null)
    {
        var build = _registered.Where(r => r.Value.Lifetime == RegisteredTaskObjectLifetime.Build).OrderBy(r => r.Value.Order).ToList();
        foreach (var (key, _) in build)
            _registered.Remove(key);
        IReadOnlyList<object> objects = build.Select(r => r.Value.Obj).ToList();
        var thrown = new List<Exception>();
        foreach (var disposable in (order?.Invoke(objects) ?? objects).OfType<IDisposable>())
        {
            try
            {
                disposable.Dispose();
            }
            catch (Exception e) when (e is not (OutOfMemoryException or StackOverflowException or AccessViolationException))
            {
                thrown.Add(e);
            }
        }
        return thrown;
    }

    /// <summary>Each error as MSBuild prints it: "error CODE: message".</summary>
    public IEnumerable<string> ErrorLines => Errors.Select(e => $"error {e.Code}: {e.Message}");
}
