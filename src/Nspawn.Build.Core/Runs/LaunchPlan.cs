namespace Nspawn.Build;

/// <summary>
/// What a launch file holds (<see cref="LaunchFile"/>): the machines, their network, the folders the run gives back to
/// the user under sudo, the warm pool's size (NspawnPoolSize) and the project, for the command that stops kept machines.
/// </summary>
internal sealed record LaunchPlan(IReadOnlyList<LaunchOptions> Machines, NetworkSettings? Network, IReadOnlyList<string> ReturnOwnership)
{
    public int PoolSize { get; init; }
    public string ProjectFile { get; init; } = "";
}
