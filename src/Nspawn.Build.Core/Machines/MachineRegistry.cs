using System.Text.Json;

namespace Nspawn.Build;

/// <summary>
/// Every machine a run starts is recorded under /run (gone at reboot, like the machines), so that when a
/// build is killed and nothing could clean up, the next run (or NspawnReap) stops the machines whose owner
/// is gone and removes their snapshots. A machine whose owner is alive is never touched.
/// </summary>
internal static class MachineRegistry
{
    public static string Dir => Path.Combine(MachineLauncher.StateDir, "machines");

    private static string PathOf(string name) => Path.Combine(Dir, name + ".json");

    public static bool Contains(string name) => File.Exists(PathOf(name));

    /// <summary>Records a machine as this process's; <paramref name="kept"/> marks one left running for a look inside.</summary>
    public static void Add(Machine machine, bool kept = false)
    {
        Directory.CreateDirectory(Dir);
        var self = Environment.ProcessId;
        var record = new MachineRecord(machine, self, ProcessInfo.StartTime(self) ?? 0) { Kept = kept };
        var tmp = PathOf(machine.Name) + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(record, MachinesFile.JsonOptions));
        File.Move(tmp, PathOf(machine.Name), overwrite: true);
    }

    public static void Remove(string name) => File.Delete(PathOf(name));

    public static IReadOnlyList<MachineRecord> List()
    {
        if (!Directory.Exists(Dir))
            return [];
        var records = new List<MachineRecord>();
        foreach (var file in Directory.EnumerateFiles(Dir, "*.json"))
        {
            try
            {
                if (JsonSerializer.Deserialize<MachineRecord>(File.ReadAllText(file), MachinesFile.JsonOptions) is { } r)
                    records.Add(r);
            }
            catch (Exception e) when (e is JsonException or IOException)
            {
                // A record cut short by a crash while it was written: nothing in it can be trusted.
                File.Delete(file);
            }
        }
        return records;
    }

    /// <summary>
    /// Stops machines whose owner is gone, then removes leftovers in the chroots folders: snapshots and
    /// half-built images whose lock nobody holds, and empty per-machine cgroups. Returns what it removed.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ReapAsync(IEnumerable<string> chrootsDirs, CancellationToken cancellationToken)
    {
        var reaped = new List<string>();
        // A kept machine is left to NspawnStopKept, unless it was powered off from inside.
        foreach (var record in List().Where(r => !r.OwnerAlive && !(r.Kept && ProcessInfo.IsRunning(r.Machine.NspawnPid, r.Machine.NspawnStartTime))))
        {
            await MachineLauncher.StopAsync(record.Machine, cancellationToken);
            reaped.Add($"machine {record.Machine.Name} (its build, PID {record.OwnerPid}, is gone)");
        }
        // Before the half-built images they belong to.
        foreach (var mount in DeviceMount.Stale(chrootsDirs).ToList())
        {
            await mount.DisposeAsync();
            reaped.Add("device mount " + mount.Where);
        }
        foreach (var dir in chrootsDirs.Where(Directory.Exists))
        {
            foreach (var snapshot in Directory.EnumerateDirectories(dir, ".#machine.*"))
            {
                var lockFile = Path.Combine(dir, ".#" + Path.GetFileName(snapshot) + ".lck");
                if (LockProbe.IsHeld(lockFile))
                    continue;
                await Subvolumes.RemoveTreeAsync(snapshot, cancellationToken);
                File.Delete(lockFile);
                reaped.Add("snapshot " + snapshot);
            }
            foreach (var lockFile in Directory.EnumerateFiles(dir, ".#.#machine.*.lck"))
                if (TempNames.SnapshotFromLock(lockFile) is { } s && !Directory.Exists(s) && !LockProbe.IsHeld(lockFile))
                    File.Delete(lockFile);
            foreach (var half in TempNames.ImageKinds.SelectMany(kind => Directory.EnumerateDirectories(dir, $".#*{kind}*")).ToList())
            {
                if (LockProbe.IsHeld(TempNames.BuildLockOf(half)))
                    continue;
                await Subvolumes.RemoveTreeAsync(half, cancellationToken);
                reaped.Add("unfinished image " + half);
            }
        }
        foreach (var stale in RunFiles.Stale().ToList())
        {
            RunFiles.Remove(stale);
            reaped.Add("machines file " + stale);
        }
        var known = List().Select(r => r.Machine.Name).ToHashSet();
        foreach (var parent in CgroupScope.OwnCgroups(File.ReadAllText("/proc/self/cgroup"), MountTable.Read()).Where(Directory.Exists))
            foreach (var stale in Directory.EnumerateDirectories(parent, "nspawn-*").Where(d => !known.Contains(Path.GetFileName(d))))
            {
                var scope = new CgroupScope([stale]);
                if (!scope.Processes().Any())
                    scope.Remove();
            }
        return reaped;
    }
}
