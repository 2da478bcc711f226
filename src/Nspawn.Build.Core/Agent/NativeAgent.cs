using System.Runtime.InteropServices;

namespace Nspawn.Build.Agent;

/// <summary>
/// The native agent (NativeAOT, Nspawn.Testing.Agent.Native) for the host's architecture, shipped next to the managed
/// one as a NuGet native asset. It is started through the guest's own dynamic loader: a package's files may have lost
/// their execute bit. A guest that cannot load it (glibc too old) fails the unit's probe, and the managed agent does all.
/// </summary>
internal static class NativeAgent
{
    public const string FileName = "nspawn-agent";

    /// <summary>Its GC's gen0 budget and region size, 1 MiB (hex, as the runtime reads DOTNET_ variables).</summary>
    public const string Gen0Size = "100000";

    /// <summary>
    /// The unit's start: the loader ($0) first runs the native agent ($1) with --probe, which only loads it; where that
    /// works the agent replaces the shell (so it is the unit's main process, which a kill or a stop reaches), with the
    /// managed agent's command (the rest) for InvokeAsync; where it does not (glibc too old, another architecture), the
    /// managed agent replaces it, for all. '$$' is systemd's escape for '$'.
    /// </summary>
    public const string Launch = "/bin/sh -c 'l=$$0 n=$$1; shift; \"$$l\" \"$$n\" --probe && exec \"$$l\" \"$$n\" --managed \"$$@\"; exec \"$$@\"'";

    /// <summary>The guest's dynamic loader for the host's architecture (the guest runs the host's architecture).</summary>
    public static string LoaderPath => RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "/lib/ld-linux-aarch64.so.1" : "/lib64/ld-linux-x86-64.so.2";

    /// <summary>
    /// The native agent below <paramref name="dir"/> (the managed agent's folder), as a relative path: under
    /// runtimes/RID/native where the SDK copies a package's native assets for a portable application, or in the folder
    /// itself for one built for a runtime; null where there is none for this architecture (then the managed agent does all).
    /// </summary>
    public static string? Find(string dir)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.Arm64))
            return null;
        var rid = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        foreach (var relative in new[] { $"runtimes/{rid}/native/{FileName}", FileName })
            if (FileStatus.Of(Path.Combine(dir, relative)) is { IsRegularFile: true })
                return relative;
        return null;
    }
}
