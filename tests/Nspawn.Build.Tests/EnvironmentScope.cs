namespace Nspawn.Build.Tests;

/// <summary>
/// A process-wide environment variable set for a while and then restored as it was. The environment belongs to the
/// whole test host: only a class of <see cref="MachinesCollection"/> (which runs with nothing beside it) may use this.
/// </summary>
public sealed class EnvironmentScope : IDisposable
{
    private readonly string _name;
    private readonly string? _before;

    public EnvironmentScope(string name, string? value)
    {
        _name = name;
        _before = Environment.GetEnvironmentVariable(name);
        Environment.SetEnvironmentVariable(name, value);
    }

    public void Dispose() => Environment.SetEnvironmentVariable(_name, _before);
}
