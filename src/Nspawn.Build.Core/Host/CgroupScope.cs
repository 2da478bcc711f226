namespace Nspawn.Build;

/// <summary>
/// A cgroup of its own for one nspawn, in every mounted hierarchy, below the cgroup we run in. Without host
/// systemd every nspawn would otherwise put its guest in the same /payload cgroup, and parallel guests then
/// fail units and hang on stop. Hierarchies that cannot be written (a read-only cgroupfs) are skipped.
/// </summary>
internal sealed class CgroupScope(IReadOnlyList<string> dirs)
{
    public IReadOnlyList<string> Dirs { get; } = dirs;

    public IEnumerable<string> ProcsFiles => Dirs.Select(d => Path.Combine(d, "cgroup.procs"));

    /// <summary>
    /// nspawn's device allow list (systemd-nspawn@.service's DevicePolicy=closed and DeviceAllow): the standard
    /// pseudo devices, terminals and tun, as cgroup v1 device rules. No disk, no mknod of anything else.
    /// </summary>
    public static readonly IReadOnlyList<string> AllowedDevices =
    [
        "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", // null, zero, full, random, urandom
        "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rw", "c 10:200 rwm", // tty, console, ptmx, pts, net/tun
    ];

    /// <summary>
    /// Makes the scope. <paramref name="owner"/> is the host UID of the guest's root in a user namespace: the
    /// cgroup2 folder is delegated to it (as systemd delegates a unit's), which the guest's systemd needs to run
    /// its own cgroups there. Where a v1 devices hierarchy is mounted, the scope gets nspawn's device policy.
    /// </summary>
    public static CgroupScope Create(string name, uint? owner = null)
    {
        var dirs = new List<string>();
        foreach (var parent in OwnCgroups(File.ReadAllText("/proc/self/cgroup"), MountTable.Read()))
        {
            var dir = Path.Combine(parent, name);
            try
            {
                Directory.CreateDirectory(dir);
                // A new v1 cpuset is empty and takes no process until it has CPUs and memory nodes.
                foreach (var file in new[] { "cpuset.cpus", "cpuset.mems" })
                    if (File.Exists(Path.Combine(parent, file)))
                        File.WriteAllText(Path.Combine(dir, file), File.ReadAllText(Path.Combine(parent, file)).Trim());
                dirs.Add(dir);
                if (File.Exists(Path.Combine(dir, "devices.deny")))
                    CloseDevices(dir);
                // cgroup.subtree_control exists only in cgroup2: the one hierarchy a guest in a user namespace runs its cgroups in.
                if (owner is { } uid && File.Exists(Path.Combine(dir, "cgroup.subtree_control")))
                    foreach (var path in new[] { dir, Path.Combine(dir, "cgroup.procs"), Path.Combine(dir, "cgroup.threads"), Path.Combine(dir, "cgroup.subtree_control") })
                    {
                        using var handle = NativeFile.Open(path, NativeFile.Path);
                        NativeFile.Chown(handle, uid, uid);
                    }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                TryRemove(dir);
            }
        }
        return new CgroupScope(dirs);
    }

    /// <summary>Denies every device, then allows nspawn's list; a failure fails the scope (never a machine with every device).</summary>
    private static void CloseDevices(string dir)
    {
        File.WriteAllText(Path.Combine(dir, "devices.deny"), "a");
        foreach (var rule in AllowedDevices)
            File.WriteAllText(Path.Combine(dir, "devices.allow"), rule);
    }

    /// <summary>For each line of /proc/self/cgroup, the folder of that cgroup under the hierarchy's mount point.</summary>
    public static IEnumerable<string> OwnCgroups(string procSelfCgroup, IReadOnlyList<Mount> mounts)
    {
        foreach (var line in procSelfCgroup.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3)
                continue;
            var controllers = parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries);
            var mount = parts[0] == "0" && parts[1] == ""
                ? mounts.FirstOrDefault(m => m.FsType == "cgroup2")
                : mounts.FirstOrDefault(m => m.FsType == "cgroup" && controllers.All(c => m.SuperOptions.Split(',').Contains(c)));
            if (mount is null)
                continue;
            var path = parts[2];
            var root = mount.Root.TrimEnd('/');
            if (root.Length > 0 && !MountTable.IsUnder(path, root))
                continue;
            yield return (mount.MountPoint.TrimEnd('/') + path[root.Length..]).TrimEnd('/');
        }
    }

    /// <summary>Every process in the scope and below it, for a forceful stop.</summary>
    public IEnumerable<int> Processes()
    {
        foreach (var dir in Dirs.Where(Directory.Exists))
            foreach (var sub in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).Prepend(dir))
            {
                string[] lines;
                try
                {
                    lines = File.ReadAllLines(Path.Combine(sub, "cgroup.procs"));
                }
                catch (IOException)
                {
                    continue;
                }
                foreach (var l in lines)
                    if (int.TryParse(l, out var pid))
                        yield return pid;
            }
    }

    /// <summary>Kills every process in the scope until none is left (a guest may still be forking); false if some outlive the timeout.</summary>
    public async Task<bool> KillAllAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var pids = Processes().Distinct().ToList();
            if (pids.Count == 0)
                return true;
            if (DateTime.UtcNow >= deadline)
                return false;
            foreach (var pid in pids)
                if (ProcessInfo.StartTime(pid) is { } start)
                    ProcessInfo.Signal(pid, start, ProcessInfo.SigKill);
            await Task.Delay(20);
        }
    }

    /// <summary>Removes the scope's folders, deepest first; a cgroup that still holds a process stays.</summary>
    public void Remove()
    {
        foreach (var dir in Dirs)
            TryRemove(dir);
    }

    private static void TryRemove(string dir)
    {
        if (!Directory.Exists(dir))
            return;
        try
        {
            foreach (var sub in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).ToList())
                Directory.Delete(sub);
            Directory.Delete(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
