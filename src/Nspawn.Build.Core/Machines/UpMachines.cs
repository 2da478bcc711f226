using System.Text;
using Nspawn.Build.Agent;

namespace Nspawn.Build;

/// <summary>
/// Machines that NspawnUp leaves running for one project, so that the user's own test runs (dotnet test, an IDE's test
/// explorer) use them without root: recorded as that project's (no build or reaper stops them), found by its tests
/// through a file in the project's obj folder that the user can read, reached only through their agents, and only by the
/// sudo user; stopped by NspawnDown.
/// </summary>
internal static class UpMachines
{
    /// <summary>The runtime setting (runtimeconfig.json) that tells the tests where their project's up file is.</summary>
    public const string AppContextKey = "Nspawn.Build.UpFile";

    /// <summary>The up machines of <paramref name="projectFile"/>.</summary>
    public static IReadOnlyList<MachineRecord> Of(string projectFile) => All().Where(r => r.UpProject == projectFile).ToList();

    /// <summary>Every up machine on the host, by project.</summary>
    public static IReadOnlyList<MachineRecord> All() =>
        MachineRegistry.List().Where(r => r.UpProject is not null)
            .OrderBy(r => r.UpProject, StringComparer.Ordinal).ThenBy(r => r.Machine.LogicalName, StringComparer.Ordinal).ToList();

    /// <summary>
    /// Leaves the started machines up for <paramref name="projectFile"/>: <paramref name="user"/> (the sudo user) may reach
    /// their agents, they are recorded as the project's, and the tests' file is written, the user's.
    /// </summary>
    public static void Keep(IReadOnlyList<Machine> machines, NetworkMode mode, PrivateNetwork? network, string projectFile, string upFile, (uint Uid, uint Gid)? user)
    {
        foreach (var machine in machines)
        {
            if (machine.Agent is null)
                throw new NspawnException(ErrorCodes.NoAgent,
                    $"Machine '{machine.LogicalName}' has no agent ({machine.AgentProblem}), and tests run without root reach up machines only through their agents. Use ContainerTest instead, or fix what keeps the agent from running.");
            if (user is { } to)
                AgentAccess.Grant(machine.Name, to.Uid);
        }
        foreach (var machine in machines)
            MachineRegistry.AddUp(machine, projectFile, upFile);
        using var folder = OpenFolder(projectFile, upFile, user, make: true)!;
        using var file = folder.Create(Path.GetFileName(upFile));
        file.Write(Encoding.UTF8.GetBytes(MachinesFile.Serialize(machines, mode, network)));
    }

    /// <summary>
    /// Stops the machines of <paramref name="records"/> (whatever became of their nspawn: after a SIGKILL their leftovers
    /// go), gives what they wrote in writable binds back to <paramref name="user"/>, removes the tests' files and the
    /// networks no machine is on any more. Every stop runs; the first failure is thrown at the end.
    /// </summary>
    public static async Task<IReadOnlyList<StopOutcome>> DownAsync(IReadOnlyList<MachineRecord> records, (uint Uid, uint Gid)? user, Action<string> progress, CancellationToken cancellationToken)
    {
        var stops = records.Select(r => MachineLauncher.StopAsync(r.Machine, CancellationToken.None)).ToList();
        await Task.WhenAll(stops.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
        var stopped = stops.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result).ToList();
        if (stopped.Count > 0)
            Ownership.ReturnBinds(user, stopped.Select(s => s.Machine), null, new DateTimeOffset(DateTime.SpecifyKind(stopped.Min(s => s.Machine.Started), DateTimeKind.Utc)).ToUnixTimeSeconds() - 1);
        foreach (var record in records.Where(r => r.UpProject is not null && r.UpFile is not null).DistinctBy(r => r.UpFile))
            using (var folder = OpenFolder(record.UpProject!, record.UpFile!, null, make: false))
                if (folder?.HasFile(Path.GetFileName(record.UpFile!)) == true)
                    folder.Remove(Path.GetFileName(record.UpFile!));
        foreach (var what in await NetworkRegistry.ReapAsync(cancellationToken))
            progress($"Removed the {what}.");
        if (stops.FirstOrDefault(t => t.IsFaulted) is { } failed)
            throw failed.Exception!.InnerException!;
        return stopped;
    }

    /// <summary>What NspawnUp says once its machines are up: how to use them and how to stop them.</summary>
    public static string Describe(IReadOnlyList<Machine> machines, string projectFile)
    {
        var project = projectFile.Contains(' ') ? $"\"{projectFile}\"" : projectFile;
        return $"Up for tests run without sudo: {string.Join(", ", machines.Select(m => $"'{m.LogicalName}' ({m.Name}, image {m.Image}{(m.Address is null ? "" : $", address {m.Address}")})"))}. "
               + $"Run 'dotnet test' or your IDE's test explorer: EphemeralMachine.FromEnvironment() finds them. "
               + $"Fresh ones: sudo dotnet build {project} -t:NspawnUp  Stop them: sudo dotnet build {project} -t:NspawnDown";
    }

    /// <summary>One line per up machine, for NspawnListUp.</summary>
    public static string Line(MachineRecord record) =>
        $"{record.UpProject}: '{record.Machine.LogicalName}' ({record.Machine.Name}, image {record.Machine.Image}, leader PID {record.Machine.LeaderPid}, up since {record.Machine.Started:u}{(record.LeftRunning ? "" : ", no longer running")})";

    /// <summary>The folder of the up file, reached from the project's folder without following a link below it.</summary>
    private static UserFolder? OpenFolder(string projectFile, string upFile, (uint Uid, uint Gid)? owner, bool make)
    {
        var project = Path.GetDirectoryName(Path.GetFullPath(projectFile))!;
        var dir = Path.GetDirectoryName(Path.GetFullPath(upFile))!;
        var root = MountTable.IsUnder(dir, project) ? project : dir;
        return make ? UserFolder.Make(root, dir, owner) : UserFolder.TryOpen(root, dir);
    }
}
