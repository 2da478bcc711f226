namespace Nspawn.Build;

/// <summary>An MSBuild item as the project wrote it: its Include and its metadata (FullPath for files).</summary>
internal sealed record ProjectItem(string Name, IReadOnlyDictionary<string, string> Metadata)
{
    public string Get(string metadata) => Metadata.TryGetValue(metadata, out var value) ? value : "";
}
