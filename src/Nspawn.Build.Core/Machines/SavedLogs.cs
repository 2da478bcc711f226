namespace Nspawn.Build;

/// <summary>The logs saved of one machine: the files written in its logs folder, and what could not be read.</summary>
internal sealed record SavedLogs(Machine Machine, string Dir, IReadOnlyList<string> Files, IReadOnlyList<string> Problems)
{
    public override string ToString() =>
        $"'{Machine.LogicalName}' ({Machine.Name}): {(Files.Count == 0 ? "nothing" : string.Join(" and ", Files.Select(Path.GetFileName)))} in {Dir}" +
        (Problems.Count == 0 ? "" : $" ({string.Join("; ", Problems)})");
}
