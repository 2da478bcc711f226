namespace Nspawn.Build;

/// <summary>What only root may do: mount file systems, make cgroups, boot machines.</summary>
internal static class Privilege
{
    public static void RequireRoot()
    {
        if (Environment.IsPrivilegedProcess)
            return;
        throw new NspawnException(ErrorCodes.NotRoot,
            "Nspawn.Build must run as root to mount file systems and boot machines. Run the build with sudo, for example 'sudo dotnet build -t:ContainerTest'.");
    }
}
