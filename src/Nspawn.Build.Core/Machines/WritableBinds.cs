namespace Nspawn.Build;

/// <summary>
/// In a user namespace a writable bind is 'rootidmap': the guest's root writes there as the folder's owner. Under
/// sudo, a bind folder the build itself made (as root, in one of the user's folders, during this build) would make
/// that owner host root, so it goes to the user before the machine boots, as it would at the build's end anyway.
/// </summary>
internal static class WritableBinds
{
    public static void GiveToSudoUser(IEnumerable<BindMount> binds)
    {
        if (Ownership.SudoUser is not { } user)
            return;
        foreach (var bind in binds.Where(b => !b.ReadOnly))
        {
            try
            {
                using var folder = NativeFile.Open(Path.GetFullPath(bind.Source).TrimEnd('/'), NativeFile.Path | NativeFile.Directory);
                if (MadeForUser(Path.GetFullPath(bind.Source).TrimEnd('/'), user.Uid) && FileStatus.Of(folder) is { Uid: 0 } status && status.ChangeTime >= Ownership.BuildStart)
                    NativeFile.Chown(folder, user.Uid, user.Gid);
            }
            catch (IOException)
            {
                // A link or no folder: left as it is (the bind's own check reports a missing source).
            }
        }
    }

    /// <summary>Whether every folder from <paramref name="path"/> up to the first of the user's was made by root during this build (obj/, then obj/shared).</summary>
    private static bool MadeForUser(string path, uint uid)
    {
        for (var dir = path; Path.GetDirectoryName(dir) is { } parent; dir = parent)
        {
            if (FileStatus.Of(parent) is not { IsDirectory: true } status)
                return false;
            if (status.Uid == uid)
                return true;
            if (status.Uid != 0 || status.ChangeTime < Ownership.BuildStart)
                return false;
        }
        return false;
    }
}
