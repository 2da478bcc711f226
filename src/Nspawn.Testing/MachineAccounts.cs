using Microsoft.Win32.SafeHandles;
using Nspawn.Build;

namespace Nspawn.Testing;

/// <summary>User and group names of a machine, read from its /etc/passwd and /etc/group (as tar in the machine would resolve them).</summary>
internal static class MachineAccounts
{
    public static uint UserId(SafeFileHandle machineRoot, string name) => IdOf(machineRoot, "/etc/passwd", name, "user");

    public static uint GroupId(SafeFileHandle machineRoot, string name) => IdOf(machineRoot, "/etc/group", name, "group");

    private static uint IdOf(SafeFileHandle root, string database, string name, string what)
    {
        if (uint.TryParse(name, out var numeric))
            return numeric;
        using (var file = RootedFile.OpenRead(root, database))
        using (var reader = new StreamReader(file))
            while (reader.ReadLine() is { } line)
            {
                // name:password:ID:...
                var fields = line.Split(':');
                if (fields.Length > 2 && fields[0] == name && uint.TryParse(fields[2], out var id))
                    return id;
            }
        throw new ArgumentException($"The machine has no {what} '{name}' (in its {database}).", nameof(name));
    }
}
