namespace Nspawn.Testing.Agent;

/// <summary>A user of the machine, from its /etc/passwd (the agent runs inside: these are the guest's own files).</summary>
internal sealed record Account(string Name, uint Uid, uint Gid, string Home, string Shell, bool Known)
{
    /// <summary>A user by name or number; a number that passwd lacks runs with that number as its group and no other groups.</summary>
    public static Account Find(string user)
    {
        foreach (var fields in Entries("/etc/passwd"))
            if (fields.Length > 6 && (fields[0] == user || fields[2] == user) && uint.TryParse(fields[2], out var uid) && uint.TryParse(fields[3], out var gid))
                return new Account(fields[0], uid, gid, fields[5], fields[6], true);
        return uint.TryParse(user, out var id) ? new Account(user, id, id, "/", "/bin/sh", false)
            : throw new ArgumentException($"The machine has no user '{user}' (in its /etc/passwd).", nameof(user));
    }

    public static uint UserId(string user) => Find(user).Uid;

    /// <summary>A group by name or number.</summary>
    public static uint GroupId(string group)
    {
        if (uint.TryParse(group, out var numeric))
            return numeric;
        foreach (var fields in Entries("/etc/group"))
            if (fields.Length > 2 && fields[0] == group && uint.TryParse(fields[2], out var gid))
                return gid;
        throw new ArgumentException($"The machine has no group '{group}' (in its /etc/group).", nameof(group));
    }

    /// <summary>
    /// Its groups as setpriv gives them: its own and those that list it in /etc/group (--init-groups), or none for a
    /// number passwd lacks (--clear-groups).
    /// </summary>
    /// <remarks>
    /// Only where the guest's groups are all in /etc/group: setpriv's initgroups asks NSS (getgrouplist), which may also
    /// ask LDAP, sssd or systemd's userdb; the native agent's own start (spawn.c) reads the file itself. Left so: a
    /// test image's users and groups are local.
    /// </remarks>
    public IReadOnlyList<uint> Groups()
    {
        if (!Known)
            return [];
        var groups = new List<uint> { Gid };
        foreach (var fields in Entries("/etc/group"))
            if (fields.Length > 3 && uint.TryParse(fields[2], out var gid) && !groups.Contains(gid) && fields[3].Split(',').Contains(Name))
                groups.Add(gid);
        return groups;
    }

    private static IEnumerable<string[]> Entries(string database) =>
        File.Exists(database) ? File.ReadLines(database).Select(line => line.Split(':')) : [];
}
