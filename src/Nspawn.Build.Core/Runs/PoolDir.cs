using System.Text.Json;

namespace Nspawn.Build;

/// <summary>
/// The hand-off between a warm pool (<see cref="MachinePool"/>) and the tests: a folder of root's in the run's folder
/// under /run, whose path the tests get in NSPAWN_POOL_DIR. It holds what the pool boots (pool.json), one file per
/// ready machine (NAME.json), and 'failed' once the pool gave up. A test claims a machine by renaming its file to
/// NAME.taken: rename(2) lets only one claimer win, so a machine never serves two tests. A test done with it renames
/// it to NAME.done, and the pool stops it while the next test runs.
/// </summary>
internal static class PoolDir
{
    public const string Variable = "NSPAWN_POOL_DIR";
    private const string TemplateFile = "pool.json";
    private const string FailedFile = "failed";
    private const string Ready = ".json";
    private const string Taken = ".taken";
    private const string Done = ".done";

    /// <summary>Makes the pool's folder in a run's folder (<see cref="RunFiles.Create"/>) and says what it boots.</summary>
    public static string Create(string runDir, PoolTemplate template)
    {
        var dir = Path.Combine(runDir, "pool");
        Directory.CreateDirectory(dir, RunFiles.Readable);
        RunFiles.Write(dir, TemplateFile, s => JsonSerializer.Serialize(s, template, StateJson.SerializerOptions));
        return dir;
    }

    public static PoolTemplate? Template(string dir)
    {
        try
        {
            return JsonSerializer.Deserialize<PoolTemplate>(File.ReadAllText(Path.Combine(dir, TemplateFile)), StateJson.SerializerOptions);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null; // the run is over, or this is not a pool
        }
    }

    /// <summary>Offers a ready machine: written under a name no claimer looks at, then renamed into place.</summary>
    public static void Offer(string dir, Machine machine)
    {
        var temp = RunFiles.Write(dir, $".{machine.Name}.tmp", s => s.Write(System.Text.Encoding.UTF8.GetBytes(MachinesFile.SerializeOne(machine))));
        File.Move(temp, Path.Combine(dir, machine.Name + Ready));
    }

    public static int ReadyCount(string dir) => Directory.Exists(dir) ? Directory.EnumerateFiles(dir, "*" + Ready).Count(f => Path.GetFileName(f) != TemplateFile) : 0;

    /// <summary>How many machines the tests took (and still hold).</summary>
    public static int TakenCount(string dir) => Directory.Exists(dir) ? Directory.EnumerateFiles(dir, "*" + Taken).Count() : 0;

    /// <summary>Takes a ready machine, or null when none is ready. Needs root (the folder is root's).</summary>
    public static Machine? TryClaim(string dir)
    {
        if (!Directory.Exists(dir))
            return null;
        foreach (var file in Directory.EnumerateFiles(dir, "*" + Ready).Where(f => Path.GetFileName(f) != TemplateFile))
        {
            var taken = Path.ChangeExtension(file, Taken);
            try
            {
                // rename(2): of two claimers, the second finds the file gone.
                File.Move(file, taken, overwrite: true);
            }
            catch (FileNotFoundException)
            {
                continue;
            }
            var machine = MachinesFile.DeserializeOne(File.ReadAllText(taken));
            if (ProcessInfo.IsRunning(machine.LeaderPid, machine.LeaderStartTime))
                return machine;
            // Died while it waited (powered off from inside?): the pool stops what is left of it at its end.
        }
        return null;
    }

    /// <summary>Hands a taken machine back for the pool to stop; false when the pool is gone (the caller stops it). Needs root.</summary>
    public static bool Return(string dir, string name)
    {
        try
        {
            File.Move(Path.Combine(dir, name + Taken), Path.Combine(dir, name + Done), overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The machines tests handed back, each once: its file is removed as it is listed.</summary>
    public static IReadOnlyList<Machine> TakeReturned(string dir)
    {
        var returned = new List<Machine>();
        foreach (var file in Directory.Exists(dir) ? Directory.EnumerateFiles(dir, "*" + Done).ToList() : [])
        {
            var machine = MachinesFile.DeserializeOne(File.ReadAllText(file));
            File.Delete(file);
            returned.Add(machine);
        }
        return returned;
    }

    public static void MarkFailed(string dir, string why) => RunFiles.Write(dir, FailedFile, s => s.Write(System.Text.Encoding.UTF8.GetBytes(why)));

    /// <summary>Why the pool gave up, or null while it works.</summary>
    public static string? Failure(string dir)
    {
        try
        {
            return File.ReadAllText(Path.Combine(dir, FailedFile));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
