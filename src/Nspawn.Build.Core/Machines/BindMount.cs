namespace Nspawn.Build;

/// <summary>A host folder or file in a machine (NspawnBind, StartOptions.Binds): read-only unless asked otherwise.</summary>
internal sealed record BindMount(string Source, string Destination, bool ReadOnly)
{
    /// <summary>
    /// The nspawn option. In a user namespace a writable bind is 'rootidmap': the guest's root writes as the folder's
    /// owner (never as host root; 'idmap' would be host root), and the guest's other users cannot write there
    /// (EOVERFLOW). Without one, a plain bind: root's files go back to the user when the machine stops.
    /// A read-only bind is plain: the guest cannot remount it writable, since it does not own that mount.
    /// </summary>
    public string Argument(bool privateUsers) =>
        $"{(ReadOnly ? "--bind-ro" : "--bind")}={Escape(Source)}:{Escape(Destination)}{(privateUsers && !ReadOnly ? ":rootidmap" : "")}";

    /// <summary>The source must exist when the machine starts (Build may make it, so this is checked then, not when the settings are).</summary>
    public void Check(string what)
    {
        if (!Directory.Exists(Source) && !File.Exists(Source))
            throw new NspawnException(ErrorCodes.BadPath, $"{what}: '{Source}' does not exist. Fix the path, or make sure the build makes it before the machines start.");
    }

    /// <summary>nspawn splits --bind at colons and reads backslash escapes: both are escaped in a path.</summary>
    public static string Escape(string path) => path.Replace("\\", "\\\\").Replace(":", "\\:");
}
