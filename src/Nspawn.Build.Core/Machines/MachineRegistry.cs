using System.Text.Json;
using Nspawn.Build.Agent;

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
    public static void Add(Machine machine, bool kept = false) => Add(NewRecord(machine) with { Kept = kept });

    /// <summary>Records a machine as one NspawnUp left running for <paramref name="projectFile"/>, whose tests find it through <paramref name="upFile"/>.</summary>
    public static void AddUp(Machine machine, string projectFile, string upFile) => Add(NewRecord(machine) with { UpProject = projectFile, UpFile = upFile });

    private static MachineRecord NewRecord(Machine machine)
    {
        var self = Environment.ProcessId;
        return new MachineRecord(machine, self, ProcessInfo.StartTime(self) ?? 0) { Format = MachineRecord.CurrentFormat };
    }

    private static void Add(MachineRecord record)
    {
        Directory.CreateDirectory(Dir);
        var machine = record.Machine;
        var tmp = PathOf(machine.Name) + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(record, StateJson.SerializerOptions));
        File.Move(tmp, PathOf(machine.Name), overwrite: true);
    }

    public static void Remove(string name) => File.Delete(PathOf(name));

    /// <summary>
    /// The records this version can act on. One it cannot use (another version's, one that lacks fields, one that is
    /// not JSON) is left as it is and reported to <paramref name="unusable"/>: it may be another version's live machine.
    /// </summary>
    public static IReadOnlyList<MachineRecord> List(Action<NspawnWarning>? unusable = null)
    {
        if (!Directory.Exists(Dir))
            return [];
        var records = new List<MachineRecord>();
        foreach (var file in Directory.EnumerateFiles(Dir, "*.json"))
        {
            string? problem;
            MachineRecord? record = null;
            try
            {
                record = JsonSerializer.Deserialize<MachineRecord>(File.ReadAllText(file), StateJson.SerializerOptions);
                problem = record is null ? "it is empty (null)" : record.Problem(Path.GetFileNameWithoutExtension(file));
            }
            catch (JsonException e)
            {
                problem = $"it is not a machine record ({e.Message.Split('\n')[0]})";
            }
            catch (IOException)
            {
                continue; // removed while we looked: its machine was stopped.
            }
            if (problem is null)
                records.Add(record!);
            else
                unusable?.Invoke(new NspawnWarning(ErrorCodes.UnusableRecord,
                    $"The machine record '{file}' was left alone: {problem}. If no build of another Nspawn.Build version runs its machine, delete the file."));
        }
        return records;
    }

    /// <summary>
    /// Stops machines whose owner is gone, then removes leftovers: the agent folders of machines never recorded, in
    /// the chroots folders snapshots and half-built images whose lock nobody holds, and empty per-machine cgroups. Returns what it removed; what it
    /// left alone (a record it cannot use, a link, a leftover it could not remove) goes to <paramref name="warn"/>, once each.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ReapAsync(IEnumerable<string> chrootsDirs, Action<NspawnWarning> warn, CancellationToken cancellationToken)
    {
        var reaped = new List<string>();
        var told = new HashSet<string>();
        void Warn(NspawnWarning w)
        {
            if (told.Add(w.Message))
                warn(w);
        }
        // A kept machine is left to NspawnStopKept, an up machine to NspawnDown, unless it was powered off from inside.
        foreach (var record in List(Warn).Where(r => !r.OwnerAlive && !r.LeftRunning))
        {
            await MachineLauncher.StopAsync(record.Machine, cancellationToken);
            reaped.Add($"machine {record.Machine.Name} (its build, PID {record.OwnerPid}, is gone)");
        }
        // The agent folder (and its socket tmpfs) of a machine whose build was killed before it recorded the machine.
        foreach (var dir in AgentSetup.Reap())
            reaped.Add("agent folder " + dir);
        // Before the half-built images they belong to.
        foreach (var mount in DeviceMount.Stale(chrootsDirs).ToList())
        {
            await mount.DisposeAsync();
            reaped.Add("device mount " + mount.Where);
        }
        foreach (var dir in chrootsDirs.Where(Directory.Exists))
        {
            // Lock files go by name in the store held open: the store may be the user's to write.
            using var store = NativeFile.Open(dir + "/.", NativeFile.ReadOnly | NativeFile.Directory);
            foreach (var snapshot in StoreEntry.Folders(dir, ".#machine.*", Warn))
            {
                var lockName = Path.GetFileName(TempNames.SnapshotLock(snapshot));
                if (LockProbe.IsHeld(lockName, store))
                    continue;
                if (await TryRemoveAsync(dir, snapshot, Warn, cancellationToken))
                {
                    NativeFile.Unlink(store, lockName);
                    reaped.Add("snapshot " + snapshot);
                }
            }
            foreach (var lockName in NativeFile.Names(store).Where(n => n.StartsWith(".#.#machine.", StringComparison.Ordinal) && n.EndsWith(".lck", StringComparison.Ordinal)))
                if (TempNames.SnapshotFromLock(lockName) is { } s && FileStatus.Of(store, s) is null && !LockProbe.IsHeld(lockName, store))
                    NativeFile.Unlink(store, lockName);
            foreach (var half in TempNames.ImageKinds.SelectMany(kind => StoreEntry.Folders(dir, $".#*{kind}*", Warn)).Distinct().ToList())
            {
                // Being built, or an old image that overlay machines still run from: left until that is over.
                if (TempNames.ImageOfTemp(Path.GetFileName(half)) is not { } image
                    || LockProbe.IsHeld(TempNames.BuildLock(dir, image)) || NspawnLocks.ImageHeld(dir, image))
                    continue;
                if (await TryRemoveAsync(dir, half, Warn, cancellationToken))
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
        // A machine's mapped image is made just before its record: young ones are left to their build.
        foreach (var stale in IdmappedMount.Leftovers().Where(m => !known.Contains(m) && DateTime.UtcNow - Directory.GetCreationTimeUtc(IdmappedMount.PathOf(m)) > TimeSpan.FromMinutes(2)).ToList())
        {
            IdmappedMount.Remove(stale);
            reaped.Add("mapped image of " + stale);
        }
        reaped.AddRange(UidRange.ReapUnused(known).Select(shift => $"UID range {shift}"));
        reaped.AddRange(await NetworkRegistry.ReapAsync(cancellationToken));
        return reaped;
    }

    /// <summary>A leftover that cannot be removed is reported and left: it must not fail every later build.</summary>
    private static async Task<bool> TryRemoveAsync(string root, string dir, Action<NspawnWarning> warn, CancellationToken cancellationToken)
    {
        try
        {
            await Subvolumes.RemoveTreeAsync(root, dir, cancellationToken);
            return true;
        }
        catch (NspawnException e)
        {
            warn(new NspawnWarning(ErrorCodes.LeftAlone, $"A leftover of an earlier run, '{dir}', could not be removed: {e.Message}"));
            return false;
        }
    }
}
