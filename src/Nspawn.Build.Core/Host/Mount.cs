namespace Nspawn.Build;

/// <summary>One line of /proc/self/mountinfo.</summary>
internal sealed record Mount(string MountPoint, string FsType, string Source, string Root, string SuperOptions, string Options = "")
{
    public bool ReadOnly => Options.Split(',').Contains("ro") || SuperOptions.Split(',').Contains("ro");
}
