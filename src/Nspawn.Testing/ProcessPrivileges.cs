using System.Runtime.InteropServices;

namespace Nspawn.Testing;

/// <summary>
/// Root only where it is needed (the seed's ProcessPrivs). Under sudo, <see cref="Drop"/> makes the process
/// run as the invoking user ($SUDO_UID, $SUDO_GID and that user's groups), keeping root as the saved ID so
/// that <see cref="Root"/> can regain it around the few calls that need it.
/// </summary>
/// <remarks>
/// Credentials belong to the whole process (glibc applies them to every thread), so scopes of different
/// threads cannot each have their own. The rule: the most recently opened scope that is still open decides
/// (with none open, the process is dropped once <see cref="Drop"/> ran). Scopes of one kind share the process;
/// a scope of the other kind waits until those opened by other threads (or async flows) are closed, so that no
/// scope ever runs with more or less privilege than it asked for. Within one flow, scopes nest; a nested scope
/// that would have to wait for another thread fails instead (InvalidOperationException), as waiting there could deadlock.
/// </remarks>
public sealed class ProcessPrivileges
{
    private static readonly Lazy<ProcessPrivileges> Instance = new(() => new ProcessPrivileges());
    private readonly object _gate = new();
    private readonly uint[] _rootGroups;
    // Open scopes in the order they were granted: the last one decides the credentials.
    private readonly List<Scope> _open = [];
    // The innermost scope of the current thread or async flow, linked to the ones around it.
    private readonly AsyncLocal<Scope?> _innermost = new();
    private bool _dropWhenIdle;

    public static ProcessPrivileges Current => Instance.Value;

    /// <summary>The invoking user's IDs, from sudo; null when the process was not started through sudo as root.</summary>
    public uint? UserId { get; }
    public uint? GroupId { get; }
    /// <summary>True while the process runs as the invoking user.</summary>
    public bool IsDropped { get; private set; }

    /// <summary>True when running as root under sudo, so that there is a user to drop to.</summary>
    public bool UnderSudo => UserId is not null;

    /// <summary>Who the tests run for: the sudo user, else the process's real user (root in a CI job).</summary>
    internal (uint Uid, uint Gid) Caller => (UserId ?? getuid(), GroupId ?? getgid());

    private ProcessPrivileges()
    {
        _rootGroups = GetGroups();
        if (geteuid() != 0 || !uint.TryParse(Environment.GetEnvironmentVariable("SUDO_UID"), out var uid) || uid == 0)
            return;
        if (!uint.TryParse(Environment.GetEnvironmentVariable("SUDO_GID"), out var gid))
            throw new InvalidOperationException("SUDO_UID is set but SUDO_GID is not: run the tests with sudo, which sets both.");
        UserId = uid;
        GroupId = gid;
    }

    /// <summary>Runs the process as the invoking user from now on (once no Root() scope is open), root kept only as the saved ID.</summary>
    public void Drop()
    {
        if (!UnderSudo)
            throw new InvalidOperationException(geteuid() == 0
                ? "Cannot drop root: the process was not started with sudo (SUDO_UID is not set). Run the tests with 'sudo dotnet build -t:ContainerTest'."
                : "Cannot drop root: the process does not run as root. Run the tests with 'sudo dotnet build -t:ContainerTest'.");
        DropIfUnderSudo();
    }

    /// <summary>Drops to the invoking user when running under sudo; as plain root (CI) it does nothing.</summary>
    public void DropIfUnderSudo()
    {
        if (!UnderSudo)
            return;
        lock (_gate)
        {
            _dropWhenIdle = true;
            Apply();
        }
    }

    /// <summary>
    /// Root until disposed; as plain root, nothing changes. Scopes nest, and Root() scopes of several threads
    /// overlap; it waits while another thread is inside <see cref="User"/> (see the remarks on the class).
    /// </summary>
    public IDisposable Root() => UnderSudo ? Open(ScopeKind.Root) : new Scope(this, ScopeKind.Root, null);

    /// <summary>The invoking user until disposed, the reverse of <see cref="Root"/>; it waits while another thread is inside Root().</summary>
    public IDisposable User()
    {
        if (!UnderSudo)
            Drop(); // throws the reason
        return Open(ScopeKind.User);
    }

    private Scope Open(ScopeKind kind)
    {
        lock (_gate)
        {
            while (_open.Any(s => s.Kind != kind && !HeldHere(s)))
            {
                // Waiting while holding a scope could wait forever: the other thread may be waiting for ours.
                if (_open.Any(HeldHere))
                    throw new InvalidOperationException(
                        $"{kind}() inside another scope of this thread must wait for a scope of another thread, which may be waiting for this one: credentials belong to the whole process. Open {kind}() outside the other scope, or keep such scopes on one thread.");
                Monitor.Wait(_gate);
            }
            var scope = new Scope(this, kind, _innermost.Value);
            _open.Add(scope);
            _innermost.Value = scope;
            try
            {
                Apply();
            }
            catch
            {
                _open.Remove(scope);
                _innermost.Value = scope.Outer;
                throw;
            }
            return scope;
        }
    }

    private void Close(Scope scope)
    {
        lock (_gate)
        {
            if (!_open.Remove(scope))
                return;
            if (_innermost.Value == scope)
                _innermost.Value = scope.Outer;
            Apply();
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Whether <paramref name="scope"/> was opened by this flow or a flow it came from (a task started inside the scope).</summary>
    private bool HeldHere(Scope scope)
    {
        for (var s = _innermost.Value; s is not null; s = s.Outer)
            if (s == scope)
                return true;
        return false;
    }

    private void Apply()
    {
        var root = _open.Count > 0 ? _open[^1].Kind == ScopeKind.Root : !_dropWhenIdle;
        if (root && IsDropped)
            RegainCore();
        else if (!root && !IsDropped)
            DropCore();
    }

    private void DropCore()
    {
        var groups = UserGroups();
        Check(setgroups((nuint)groups.Length, groups), "setgroups");
        Check(setresgid(GroupId!.Value, GroupId.Value, 0), "setresgid");
        Check(setresuid(UserId!.Value, UserId.Value, 0), "setresuid");
        IsDropped = true;
    }

    private void RegainCore()
    {
        Check(setresuid(0, 0, UserId!.Value), "setresuid");
        Check(setresgid(0, 0, GroupId!.Value), "setresgid");
        Check(setgroups((nuint)_rootGroups.Length, _rootGroups), "setgroups");
        IsDropped = false;
    }

    private uint[] UserGroups()
    {
        var name = Environment.GetEnvironmentVariable("SUDO_USER");
        if (string.IsNullOrEmpty(name))
            return [GroupId!.Value];
        var groups = new uint[64];
        var count = groups.Length;
        if (getgrouplist(name, GroupId!.Value, groups, ref count) < 0)
        {
            groups = new uint[count];
            getgrouplist(name, GroupId.Value, groups, ref count);
        }
        return groups[..count];
    }

    private static uint[] GetGroups()
    {
        var count = getgroups(0, null);
        var groups = new uint[Math.Max(count, 0)];
        return count > 0 && getgroups(count, groups) == count ? groups : [];
    }

    private static void Check(int result, string call)
    {
        if (result != 0)
            throw new InvalidOperationException($"{call} failed with errno {Marshal.GetLastPInvokeError()}.");
    }

    private enum ScopeKind
    {
        Root,
        User,
    }

    private sealed class Scope(ProcessPrivileges owner, ScopeKind kind, Scope? outer) : IDisposable
    {
        private int _disposed;

        public ScopeKind Kind { get; } = kind;
        public Scope? Outer { get; } = outer;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
                owner.Close(this);
        }
    }

    // glibc applies these to every thread of the process (its setxid broadcast).
    [DllImport("libc", SetLastError = true)] private static extern int setresuid(uint ruid, uint euid, uint suid);
    [DllImport("libc", SetLastError = true)] private static extern int setresgid(uint rgid, uint egid, uint sgid);
    [DllImport("libc", SetLastError = true)] private static extern int setgroups(nuint size, uint[] list);
    [DllImport("libc", SetLastError = true)] private static extern int getgroups(int size, uint[]? list);
    [DllImport("libc", SetLastError = true)] private static extern int getgrouplist(string user, uint group, uint[] groups, ref int ngroups);
    [DllImport("libc")] private static extern uint geteuid();
    [DllImport("libc")] private static extern uint getuid();
    [DllImport("libc")] private static extern uint getgid();
}
