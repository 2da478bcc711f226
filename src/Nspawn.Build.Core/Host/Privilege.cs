using System.Runtime.InteropServices;

namespace Nspawn.Build;

/// <summary>What only root may do: mount file systems, make cgroups, boot machines.</summary>
internal static class Privilege
{
    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEuid();

    /// <summary>
    /// Whether the process runs as root now. Asked of the kernel each time: Environment.IsPrivilegedProcess keeps its
    /// first answer, and the tests' process drops root and takes it back (ProcessPrivileges).
    /// </summary>
    public static bool IsRoot => GetEuid() == 0;

    public static void RequireRoot()
    {
        if (IsRoot)
            return;
        throw new NspawnException(ErrorCodes.NotRoot,
            "Nspawn.Build must run as root to mount file systems and boot machines. Run the build with sudo, for example 'sudo dotnet build -t:ContainerTest'.");
    }
}
