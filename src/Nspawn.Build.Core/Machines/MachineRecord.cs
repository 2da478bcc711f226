using System.Text.RegularExpressions;

namespace Nspawn.Build;

/// <summary>A started machine and the process that owns it (the build), with start times to rule out PID reuse.</summary>
internal sealed partial record MachineRecord(Machine Machine, int OwnerPid, ulong OwnerStartTime)
{
    /// <summary>Left running after its tests failed (NspawnKeepOnFailure): the reaper leaves it to NspawnStopKept while it runs.</summary>
    public bool Kept { get; init; }

    /// <summary>Started by NspawnUp for this project (its file), for test runs without root: left running until NspawnDown.</summary>
    public string? UpProject { get; init; }

    /// <summary>The up machines' file in that project, which the tests read: removed by NspawnDown.</summary>
    public string? UpFile { get; init; }

    /// <summary>Left to a user (kept or up) while its nspawn runs: no build stops it but on the user's word.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool LeftRunning => (Kept || UpProject is not null) && ProcessInfo.IsRunning(Machine.NspawnPid, Machine.NspawnStartTime);

    /// <summary>Bump when what a record holds changes: a build acts only on records of its own format and leaves the others alone.</summary>
    public const int CurrentFormat = 1;

    /// <summary>The format the record was written in; 0 for records from before there was one.</summary>
    public int Format { get; init; }

    public bool OwnerAlive => ProcessInfo.IsRunning(OwnerPid, OwnerStartTime);

    [GeneratedRegex("^nspawn-[a-z0-9-]+$")]
    private static partial Regex MachineName();

    /// <summary>
    /// Why this version cannot act on the record read from <paramref name="fileName"/> (another format, a field
    /// missing or out of shape); null when it can. A reaper acting on half a record would stop or delete the wrong thing.
    /// </summary>
    public string? Problem(string fileName)
    {
        if (Format != CurrentFormat)
            return $"it was written by another version of Nspawn.Build (record format {Format}; this version reads format {CurrentFormat})";
        if (Machine is not { } m)
            return "it lacks the field machine";
        var missing = new (string Field, bool Missing)[]
        {
            ("machine.logicalName", m.LogicalName is null), ("machine.name", m.Name is null), ("machine.image", m.Image is null),
            ("machine.imageDir", m.ImageDir is null), ("machine.cgroups", m.Cgroups is null), ("ownerPid", OwnerPid <= 0),
        }.Where(f => f.Missing).Select(f => f.Field).ToList();
        if (missing.Count > 0)
            return $"it lacks the field{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing)}";
        // Read as JSON, the fields the annotations call non-null may still be null: checked above, named here.
        var (name, cgroups) = (m.Name!, m.Cgroups!);
        if (!MachineName().IsMatch(name) || name != fileName)
            return $"its machine name '{name}' is not one Nspawn.Build makes, or not its file's name";
        if (!Path.IsPathRooted(m.ImageDir)
            || m.Snapshot is { } s && (!Path.IsPathRooted(s) || !TempNames.IsSnapshot(Path.GetFileName(s)))
            || m.Unit is { } u && u != name + ".service"
            || cgroups.Any(c => c is null || !Path.IsPathRooted(c) || Path.GetFileName(c) != name)
            || m.StopTimeout <= TimeSpan.Zero)
            return "its image folder, snapshot, unit, cgroups or stop timeout are not those of a machine Nspawn.Build starts";
        return null;
    }
}
