namespace Nspawn.Build;

/// <summary>What the host must have for a project's settings, checked before anything is created: root, tools, the folders.</summary>
internal static class HostChecks
{
    public static void Run(ResolvedProject project)
    {
        if (project.Store.Mode == EphemeralMode.Overlay)
            Privilege.RequireRoot();
        else
            project.Store.Store().Check();
        foreach (var machine in project.Machines)
            MachineLauncher.Check(machine);
        if (project.Network.Mode == NetworkMode.Private)
            NetworkChecks.Run(project.Network);
        var builder = project.Store.Builder();
        foreach (var image in project.Images)
            builder.Check(image);
    }
}
