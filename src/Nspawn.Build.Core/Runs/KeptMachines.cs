namespace Nspawn.Build;

/// <summary>Machines left running after their tests failed (NspawnKeepOnFailure), for a look inside, until NspawnStopKept stops them.</summary>
internal static class KeptMachines
{
    /// <summary>The kept machines whose images are in <paramref name="chrootsDir"/>.</summary>
    public static IReadOnlyList<Machine> In(string chrootsDir) =>
        MachineRegistry.List().Where(r => r.Kept && MountTable.IsUnder(r.Machine.ImageDir, chrootsDir)).Select(r => r.Machine).OrderBy(m => m.Name, StringComparer.Ordinal).ToList();

    /// <summary>What a user needs: how to get a shell in it and how to stop it.</summary>
    public static string Describe(Machine machine, string projectFile)
    {
        var sudo = Ownership.SudoUser is null ? "" : "sudo ";
        var project = projectFile.Contains(' ') ? $"\"{projectFile}\"" : projectFile;
        return $"Kept machine '{machine.LogicalName}' ({machine.Name}, image {machine.Image}, leader PID {machine.LeaderPid}) running for a look inside. " +
               $"Get a shell in it: {sudo}{GuestCommand.Shell(machine)}  Stop the kept machines: {sudo}dotnet build {project} -t:NspawnStopKept";
    }
}
