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
            var path = Path.GetFullPath(bind.Source).TrimEnd('/');
            if (Path.GetDirectoryName(path) is not { } parentPath)
                continue;
            try
            {
                using var parent = NativeFile.Open(parentPath, NativeFile.Path | NativeFile.Directory);
                using var folder = NativeFile.Open(Path.GetFileName(path), NativeFile.Path | NativeFile.Directory, parent);
                var status = FileStatus.Of(folder);
                if (status.Uid == 0 && status.ChangeTime >= Ownership.BuildStart && FileStatus.Of(parent).Uid == user.Uid)
                    NativeFile.Chown(folder, user.Uid, user.Gid);
            }
            catch (IOException)
            {
                // A link or no folder: left as it is (the bind's own check reports a missing source).
            }
        }
    }
}
