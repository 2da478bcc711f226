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
        NetworkMode Network, IReadOnlyList<BindMount>? Binds, bool? PrivateUsers, string? ResultsDir, KeepLogs? KeepLogs, bool? KeepOnFailure);

    private sealed record NetworkEntry(NetworkMode Mode, string Range, bool Outbound);

    private sealed record Document(IReadOnlyList<Entry> Machines, IReadOnlyList<string>? ReturnOwnership, NetworkEntry? Network, int? PoolSize, string? ProjectFile);

    /// <summary>Writes the machines, their network, the folders whose files the run gives back to the user under sudo, the pool and the project (as the build has them).</summary>
    public static void Write(string path, LaunchPlan plan)
    {
        var network = plan.Network;
        var json = JsonSerializer.SerializeToUtf8Bytes(new Document(plan.Machines.Select(o =>
            new Entry(o.LogicalName, o.ImageDir, o.Mode, o.UseSystemdRun, o.BootTimeout.TotalSeconds, o.StopTimeout.TotalSeconds, o.ExtraArguments, o.Network, o.Binds, o.PrivateUsers,
                o.ResultsDir, o.KeepLogs, o.KeepOnFailure)).ToList(),
            plan.ReturnOwnership, network is null ? null : new NetworkEntry(network.Mode, network.Range.ToString(), network.Outbound), plan.PoolSize, plan.ProjectFile), StateJson.SerializerOptions);
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

    /// <summary>The machines to start, each with a new unique name, and the rest of the plan; null when there is no file.</summary>
    public static LaunchPlan? Read(string path)
    {
        if (FileStatus.Of(path) is null)
            return null;
        using var file = new FileStream(NativeFile.Open(path, NativeFile.ReadOnly), FileAccess.Read);
        var document = JsonSerializer.Deserialize<Document>(file, StateJson.SerializerOptions)
            ?? throw new NspawnException(ErrorCodes.BadPath, $"'{path}' is empty. Build the test project again.");
        return new LaunchPlan(document.Machines.Select(e => new LaunchOptions(e.LogicalName, e.ImageDir)
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
            // An older build's file has none of these: no logs saved, nothing kept, no pool, as then.
            ResultsDir = e.ResultsDir,
            KeepLogs = e.KeepLogs ?? KeepLogs.Never,
            KeepOnFailure = e.KeepOnFailure ?? false,
        }).ToList(), document.Network is { } n && Ipv4Range.TryParse(n.Range) is { } range ? new NetworkSettings(n.Mode, range, n.Outbound) : null,
            document.ReturnOwnership ?? [])
        {
            PoolSize = document.PoolSize ?? 0,
            ProjectFile = document.ProjectFile ?? "",
        };
    }
}
