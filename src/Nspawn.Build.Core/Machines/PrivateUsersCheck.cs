namespace Nspawn.Build;

/// <summary>
/// What a machine in a user namespace needs from the host, checked before anything is made: never a silent
/// fallback to a guest whose root is host root.
/// </summary>
internal static class PrivateUsersCheck
{
    private const string OptOut =
        "or, only for trusted images and tests, set NspawnPrivateUsers=false (unsafe: the guest's root is then the host's root)";

    public static void Require(bool useSystemdRun)
    {
        if (ReadNumber("/proc/sys/user/max_user_namespaces") is 0)
            throw new NspawnException(ErrorCodes.NoPrivateUsers,
                $"User namespaces are switched off on this host (user.max_user_namespaces is 0), and every machine needs one so that its root is nobody on the host. Switch them on (sysctl -w user.max_user_namespaces=15000), {OptOut}.");
        // Without host systemd, the guest runs its cgroups in a cgroup2 folder of ours delegated to it.
        if (!useSystemdRun && !MountTable.Read().Any(m => m.FsType == "cgroup2"))
            throw new NspawnException(ErrorCodes.NoPrivateUsers,
                $"This host has no cgroup2 hierarchy mounted, which a machine in a user namespace needs (its systemd runs its cgroups in one delegated to it). Mount one (mount -t cgroup2 none /sys/fs/cgroup/unified), {OptOut}.");
    }

    private static long? ReadNumber(string path)
    {
        try
        {
            return long.TryParse(File.ReadAllText(path).Trim(), out var value) ? value : null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
