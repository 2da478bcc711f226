namespace Nspawn.Testing.Agent;

/// <summary>
/// A cgroup of its own for each command, below the agent's (its unit has Delegate=yes): killing it kills all the
/// command started, as stopping a unit would, at the cost of a mkdir rather than a unit. One a command left empty
/// serves the next (cgroup2): no mkdir and rmdir per command, where it is still as new (a command as root may have
/// frozen it, limited it, or made cgroups below it).
/// </summary>
internal sealed class CommandCgroup : IDisposable
{
    private static readonly string? Parent = FindOwn();
    /// <summary>How many empty cgroups wait for the next commands: as many as run at once, usually one.</summary>
    private const int MaxIdle = 4;
    private static readonly Stack<string> Idle = new();
    private static long _next;
    private readonly string _dir;
    private bool _released;
    private bool _dropped;

    /// <summary>
    /// What a new cgroup holds, which a command as root may change and the next would inherit: no cgroups below (nor a
    /// limit on them), a domain one; and unfrozen (cgroup.events). With controllers (none where the agent enables none) it could hold
    /// limits too: then it is never reused.
    /// </summary>
    private static readonly (string File, string Value)[] AsNew =
        [("cgroup.controllers", ""), ("cgroup.type", "domain"), ("cgroup.max.depth", "max"), ("cgroup.max.descendants", "max")];

    private CommandCgroup(string dir) => _dir = dir;

    /// <summary>The cgroup's folder; in the unified hierarchy (cgroup2) where <see cref="Unified"/>.</summary>
    public string Dir => _dir;

    /// <summary>A cgroup2 one: a process can be started straight into it (clone3's CLONE_INTO_CGROUP).</summary>
    public static bool Unified { get; } = Parent is not null && File.Exists("/sys/fs/cgroup/cgroup.controllers");

    /// <summary>cgroup.procs, which the command's first process writes itself into before it becomes the command.</summary>
    public string ProcsFile => Path.Combine(_dir, "cgroup.procs");

    /// <summary>A new cgroup, or null where none can be made (then only the command's own process tree is killed).</summary>
    public static CommandCgroup? Create()
    {
        if (Parent is null)
            return null;
        while (true)
        {
            string? idle;
            lock (Idle)
                if (!Idle.TryPop(out idle))
                    break;
            // Checked as it is taken: also what changed while it waited.
            var reused = new CommandCgroup(idle);
            if (reused.IsEmpty(unfrozen: true) && reused.IsAsNew())
                return reused;
            // Removed where it can be; else (cgroups below it, a process moved in) left to the unit's stop.
            reused.TryRemove();
        }
        var dir = Path.Combine(Parent, $"cmd-{Environment.ProcessId}-{Interlocked.Increment(ref _next)}");
        try
        {
            Directory.CreateDirectory(dir);
            return new CommandCgroup(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Never to be used again, nor kept for the next command (it could not be opened).</summary>
    public void Drop() => _dropped = true;

    /// <summary>Whether the command may start in it (not <see cref="Drop"/>ped).</summary>
    public bool Usable => !_dropped;

    /// <summary>
    /// Kills what the command left running; an empty cgroup is kept for the next command, or removed. Called once the
    /// command's first process is gone: a shell killed before it moved in can no longer join a kept one.
    /// </summary>
    public void Kill()
    {
        if (!_dropped && IsEmpty())
        {
            lock (Idle)
            {
                if (Idle.Count < MaxIdle)
                {
                    Idle.Push(_dir);
                    _released = true;
                    return;
                }
            }
        }
        if (TryRemove())
            return;
        try
        {
            File.WriteAllText(Path.Combine(_dir, "cgroup.kill"), "1");
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // No cgroup.kill before Linux 5.14: each process in turn.
        }
        for (var round = 0; round < 10 && Pids() is { Count: > 0 } pids; round++)
            foreach (var pid in pids)
                Native.Kill(pid, 9);
    }

    /// <summary>Removes the cgroup once it is empty (a killed process takes a moment to leave it).</summary>
    public void Dispose()
    {
        for (var attempt = 0; attempt < 200 && !_released; attempt++)
        {
            try
            {
                Directory.Delete(_dir);
                return;
            }
            catch (DirectoryNotFoundException)
            {
                return;
            }
            catch (IOException)
            {
                Thread.Sleep(5);
            }
            catch (UnauthorizedAccessException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// cgroup2's "populated 0": no process in it (a cgroup1 one has no cgroup.events, and is never kept); and with
    /// <paramref name="unfrozen"/>, "frozen 0": neither it (cgroup.freeze) nor a parent is frozen.
    /// </summary>
    private bool IsEmpty(bool unfrozen = false)
    {
        try
        {
            var events = "\n" + ReadSmall("cgroup.events");
            return events.Contains("\npopulated 0\n", StringComparison.Ordinal) && (!unfrozen || events.Contains("\nfrozen 0\n", StringComparison.Ordinal));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>See <see cref="AsNew"/>; and no cgroup below (cgroup.stat), also an empty one.</summary>
    private bool IsAsNew()
    {
        try
        {
            foreach (var (file, value) in AsNew)
                if (ReadSmall(file).TrimEnd('\n') != value)
                    return false;
            return ("\n" + ReadSmall("cgroup.stat")).Contains("\nnr_descendants 0\n", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A kernel without one of them makes a new one per command (as one without cgroup.events' frozen line, 5.2's).
            return false;
        }
    }

    /// <summary>
    /// One of the cgroup's own files, each a page at most: open, one read, close (File.ReadAllText adds a stat, a lock
    /// and buffers, seven times per command).
    /// </summary>
    private string ReadSmall(string file)
    {
        using var handle = Native.Open(Path.Combine(_dir, file), Native.ReadOnly);
        Span<byte> buffer = stackalloc byte[4096];
        return System.Text.Encoding.ASCII.GetString(buffer[..Native.Read(handle, buffer)]);
    }

    private bool TryRemove()
    {
        try
        {
            Directory.Delete(_dir);
            return _released = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private List<int> Pids()
    {
        try
        {
            return File.ReadAllLines(ProcsFile).Select(int.Parse).ToList();
        }
        catch (Exception e) when (e is IOException or FormatException)
        {
            return [];
        }
    }

    private static string? FindOwn()
    {
        try
        {
            // "ID:CONTROLLERS:PATH". systemd's own hierarchy: the unified one where the guest has it at /sys/fs/cgroup
            // ("0::/system.slice/nspawn-agent.service"; the host's v1 lines show too, but are not the guest's), else the named one.
            var entries = File.ReadAllLines("/proc/self/cgroup").Select(l => l.Split(':', 3)).Where(f => f.Length == 3).ToList();
            var unifiedMounted = File.Exists("/sys/fs/cgroup/cgroup.controllers");
            var dir = unifiedMounted && entries.FirstOrDefault(f => f[0] == "0" && f[1] == "") is { } unified ? "/sys/fs/cgroup" + unified[2]
                : entries.FirstOrDefault(f => f[1] == "name=systemd") is { } legacy ? "/sys/fs/cgroup/systemd" + legacy[2] : null;
            dir = dir?.TrimEnd('/');
            return dir is not null && File.Exists(Path.Combine(dir, "cgroup.procs")) ? dir : null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
