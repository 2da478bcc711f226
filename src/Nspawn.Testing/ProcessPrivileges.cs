using System.Runtime.InteropServices;

namespace Nspawn.Testing;

/// <summary>
/// Root only where it is needed (the seed's ProcessPrivs). Under sudo, <see cref="Drop"/> makes the process
/// run as the invoking user ($SUDO_UID, $SUDO_GID and that user's groups), keeping root as the saved ID so
/// that <see cref="Root"/> can regain it around the few calls that need it. Credentials belong to the whole
/// process: while one thread is inside Root(), every thread is root.
/// </summary>
public sealed class ProcessPrivileges
{
    private static readonly Lazy<ProcessPrivileges> Instance = new(() => new ProcessPrivileges());
    private readonly object _gate = new();
    private readonly uint[] _rootGroups;
    private int _rootScopes;

    public static ProcessPrivileges Current => Instance.Value;

    /// <summary>The invoking user's IDs, from sudo; null when the process was not started through sudo as root.</summary>
    public uint? UserId { get; }
    public uint? GroupId { get; }
    public bool IsDropped { get; private set; }

    /// <summary>True when running as root under sudo, so that there is a user to drop to.</summary>
    public bool UnderSudo => UserId is not null;

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

    /// <summary>Runs the process as the invoking user from now on, root kept only as the saved ID.</summary>
    public void Drop()
    {
        lock (_gate)
        {
            if (!UnderSudo)
                throw new InvalidOperationException(geteuid() == 0
                    ? "Cannot drop root: the process was not started with sudo (SUDO_UID is not set). Run the tests with 'sudo dotnet build -t:ContainerTest'."
                    : "Cannot drop root: the process does not run as root. Run the tests with 'sudo dotnet build -t:ContainerTest'.");
            if (IsDropped)
                return;
            DropCore();
        }
    }

    /// <summary>Drops to the invoking user when running under sudo; as plain root (CI) it does nothing.</summary>
    public void DropIfUnderSudo()
    {
        lock (_gate)
            if (UnderSudo && !IsDropped && _rootScopes == 0)
                DropCore();
    }

    /// <summary>Root until disposed (scopes nest and may overlap across threads); as root already, nothing changes.</summary>
    public IDisposable Root()
    {
        lock (_gate)
        {
            if (_rootScopes++ == 0)
            {
                _dropAfterRoot = IsDropped;
                if (IsDropped)
                    RegainCore();
            }
        }
        return new Scope(() =>
        {
            lock (_gate)
                if (--_rootScopes == 0 && _dropAfterRoot)
                    DropCore();
        });
    }

    /// <summary>The invoking user until disposed, the reverse of <see cref="Root"/>; not to be mixed with a Root() scope of another thread.</summary>
    public IDisposable User()
    {
        lock (_gate)
        {
            if (IsDropped)
                return new Scope(() => { });
            Drop();
        }
        return new Scope(() =>
        {
            lock (_gate)
                RegainCore();
        });
    }

    private bool _dropAfterRoot;

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

    private sealed class Scope(Action dispose) : IDisposable
    {
        private Action? _dispose = dispose;

        public void Dispose() => Interlocked.Exchange(ref _dispose, null)?.Invoke();
    }

    // glibc applies these to every thread of the process (its setxid broadcast).
    [DllImport("libc", SetLastError = true)] private static extern int setresuid(uint ruid, uint euid, uint suid);
    [DllImport("libc", SetLastError = true)] private static extern int setresgid(uint rgid, uint egid, uint sgid);
    [DllImport("libc", SetLastError = true)] private static extern int setgroups(nuint size, uint[] list);
    [DllImport("libc", SetLastError = true)] private static extern int getgroups(int size, uint[]? list);
    [DllImport("libc", SetLastError = true)] private static extern int getgrouplist(string user, uint group, uint[] groups, ref int ngroups);
    [DllImport("libc")] private static extern uint geteuid();
}
