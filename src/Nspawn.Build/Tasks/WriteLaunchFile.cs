using Microsoft.Build.Framework;

namespace Nspawn.Build.Tasks;

/// <summary>
/// For plain 'dotnet test' in Microsoft.Testing.Platform mode: writes the resolved machines next to the test
/// application, whose Nspawn extension boots them before the tests and stops them after (see LaunchFile).
/// </summary>
public sealed class WriteLaunchFile : NspawnTask
{
    /// <summary>ResolveNspawnSettings' ResolvedMachines.</summary>
    [Required] public ITaskItem[] Machines { get; set; } = [];
    /// <summary>ResolveNspawnSettings' ResolvedNetwork; the host's network when not given.</summary>
    public ITaskItem[] Network { get; set; } = [];
    /// <summary>The file to write, next to the test application.</summary>
    [Required] public string File { get; set; } = "";
    /// <summary>Under sudo: folders whose files the run writes go back to the invoking user at its end.</summary>
    public string[] ReturnOwnership { get; set; } = [];
    /// <summary>ResolveNspawnSettings' ResolvedPoolSize: that many machines like the first one are kept booted ahead for the tests' own.</summary>
    public int PoolSize { get; set; }
    /// <summary>The project (MSBuildProjectFullPath), for the command that stops kept machines.</summary>
    public string ProjectFile { get; set; } = "";

    private protected override Task ExecuteAsync(CancellationToken cancellationToken)
    {
        LaunchFile.Write(File, new LaunchPlan(Machines.Select(ResolvedItems.ToLaunch).ToList(), Network.Length > 0 ? ResolvedItems.ToNetwork(Network) : null, ReturnOwnership)
        {
            PoolSize = PoolSize,
            ProjectFile = ProjectFile,
        });
        Log.LogMessage(MessageImportance.Normal, $"The test application boots {string.Join(", ", Machines.Select(m => $"'{m.ItemSpec}'"))} when it runs: {File}.");
        return Task.CompletedTask;
    }
}
