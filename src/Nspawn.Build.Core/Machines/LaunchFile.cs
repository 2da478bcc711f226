using System.Text.Json;

namespace Nspawn.Build;

/// <summary>
/// The machines a Microsoft.Testing.Platform test application boots for itself (plain 'dotnet test' in MTP
/// mode, where the build has ended before the tests start): the build writes what it resolved into a file
/// next to the application, and the package's MTP extension reads it there. It sits in the user's tree, so it
/// is written and read without following a link.
/// </summary>
internal static class LaunchFile
{
    /// <summary>Its name next to the test application's assembly.</summary>
    public static string NameFor(string assemblyName) => assemblyName + ".nspawn.json";

    private sealed record Entry(string LogicalName, string ImageDir, EphemeralMode Mode, bool UseSystemdRun, double BootTimeout, double StopTimeout, IReadOnlyList<string> ExtraArguments,
        NetworkMode Network, IReadOnlyList<BindMount>? Binds, bool? PrivateUsers);

    private sealed record NetworkEntry(NetworkMode Mode, string Range, bool Outbound);

    private sealed record Document(IReadOnlyList<Entry> Machines, IReadOnlyList<string>? ReturnOwnership, NetworkEntry? Network);

    /// <summary>Writes the machines, their network, and the folders whose files the run gives back to the user under sudo (as the build does).</summary>
    public static void Write(string path, IReadOnlyList<LaunchOptions> machines, NetworkSettings? network, IReadOnlyList<string> returnOwnership)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(new Document(machines.Select(o =>
            new Entry(o.LogicalName, o.ImageDir, o.Mode, o.UseSystemdRun, o.BootTimeout.TotalSeconds, o.StopTimeout.TotalSeconds, o.ExtraArguments, o.Network, o.Binds, o.PrivateUsers)).ToList(),
            returnOwnership, network is null ? null : new NetworkEntry(network.Mode, network.Range.ToString(), network.Outbound)), MachinesFile.JsonOptions);
        // A new file beside it, then renamed over it: a link planted under its name is replaced, never written through.
        var tmp = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var file = new FileStream(NativeFile.Open(tmp, NativeFile.WriteOnly | NativeFile.Create | NativeFile.Exclusive, mode: 0b110_100_100), FileAccess.Write))
                file.Write(json);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    /// <summary>The machines to start, each with a new unique name, their network, and the folders to give back; null when there is no file.</summary>
    public static (IReadOnlyList<LaunchOptions> Machines, NetworkSettings? Network, IReadOnlyList<string> ReturnOwnership)? Read(string path)
    {
        if (FileStatus.Of(path) is null)
            return null;
        using var file = new FileStream(NativeFile.Open(path, NativeFile.ReadOnly), FileAccess.Read);
        var document = JsonSerializer.Deserialize<Document>(file, MachinesFile.JsonOptions)
            ?? throw new NspawnException(ErrorCodes.BadPath, $"'{path}' is empty. Build the test project again.");
        return (document.Machines.Select(e => new LaunchOptions(e.LogicalName, e.ImageDir)
        {
            Mode = e.Mode,
            UseSystemdRun = e.UseSystemdRun,
            BootTimeout = TimeSpan.FromSeconds(e.BootTimeout),
            StopTimeout = TimeSpan.FromSeconds(e.StopTimeout),
            ExtraArguments = e.ExtraArguments,
            Network = e.Network,
            Binds = e.Binds ?? [],
            // A file without the setting is an older build's: the safe default.
            PrivateUsers = e.PrivateUsers ?? Settings.PrivateUsers.Default,
        }).ToList(), document.Network is { } n && Ipv4Range.TryParse(n.Range) is { } range ? new NetworkSettings(n.Mode, range, n.Outbound) : null,
            document.ReturnOwnership ?? []);
    }
}
