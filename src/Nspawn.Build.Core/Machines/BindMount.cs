namespace Nspawn.Build;

/// <summary>A host folder or file in a machine (NspawnBind, StartOptions.Binds): read-only unless asked otherwise.</summary>
internal sealed record BindMount(string Source, string Destination, bool ReadOnly)
{
    /// <summary>
    /// The nspawn option: a plain bind, not 'rootidmap' (which would make the guest's root write as the folder's
    /// owner, but fails every write of the guest's other users with EOVERFLOW); root's files go back to the user when the machine stops.
    /// </summary>
    public string Argument() => $"{(ReadOnly ? "--bind-ro" : "--bind")}={Escape(Source)}:{Escape(Destination)}";

    /// <summary>The source must exist when the machine starts (Build may make it, so this is checked then, not when the settings are).</summary>
    public void Check(string what)
    {
        if (!Directory.Exists(Source) && !File.Exists(Source))
            throw new NspawnException(ErrorCodes.BadPath, $"{what}: '{Source}' does not exist. Fix the path, or make sure the build makes it before the machines start.");
    }

    /// <summary>nspawn splits --bind at colons and reads backslash escapes: both are escaped in a path.</summary>
    public static string Escape(string path) => path.Replace("\\", "\\\\").Replace(":", "\\:");
}
