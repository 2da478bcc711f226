using System.IO.Compression;
using System.Text;
using CliWrap;
using CliWrap.Buffered;
using Xunit;

namespace Nspawn.Build.Tests;

public static class Repo
{
    public static string Root { get; } = FindRoot();
    public static string Sample => Path.Combine(Root, "tests/Sample");
    public static string ChrootsDir => Path.Combine(Root, "test_chroots");
    public static string ImageDir => Path.Combine(ChrootsDir, "bookworm");

    private static string FindRoot()
    {
        for (var dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
            if (File.Exists(Path.Combine(dir, "Nspawn.Build.sln")))
                return dir;
        throw new InvalidOperationException("Nspawn.Build.sln not found above " + AppContext.BaseDirectory);
    }
}

public sealed record RunResult(int ExitCode, string Output)
{
    public override string ToString() => $"exit code {ExitCode}:\n{Output}";
}

/// <summary>What a run left behind: nspawn processes, snapshots, per-machine cgroups and notify sockets.</summary>
public static class Leaks
{
    public static IReadOnlyList<string> Find()
    {
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                if (int.TryParse(Path.GetFileName(dir), out _) && File.ReadAllText(Path.Combine(dir, "comm")).Trim() == "systemd-nspawn"
                    && ProcessInfo.StartTime(int.Parse(Path.GetFileName(dir))) is not null)
                    found.Add("process " + File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' '));
            }
            catch (IOException)
            {
            }
        }
        if (Directory.Exists(Repo.ChrootsDir))
            found.AddRange(Directory.EnumerateFileSystemEntries(Repo.ChrootsDir, ".#machine.*").Select(s => "snapshot " + s));
        if (Directory.Exists(MachineLauncher.StateDir))
            found.AddRange(Directory.EnumerateFiles(MachineLauncher.StateDir, "*.notify").Select(s => "socket " + s));
        foreach (var hierarchy in Directory.EnumerateDirectories("/sys/fs/cgroup"))
            found.AddRange(Directory.EnumerateDirectories(hierarchy, "nspawn-*", SearchOption.AllDirectories).Select(s => "cgroup " + s));
        return found;
    }

    public static void AssertNone() => Assert.Empty(Find());
}

public static class Shell
{
    public static async Task<RunResult> RunAsync(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null, string? workingDir = null)
    {
        var output = new StringBuilder();
        var result = await Cli.Wrap(program).WithArguments(args)
            .WithEnvironmentVariables((env ?? new Dictionary<string, string?>()).ToDictionary(kv => kv.Key, kv => kv.Value))
            .WithWorkingDirectory(workingDir ?? Repo.Root)
            .WithStandardOutputPipe(PipeTarget.ToStringBuilder(output))
            .WithStandardErrorPipe(PipeTarget.ToStringBuilder(output))
            .WithValidation(CommandResultValidation.None)
            .ExecuteAsync();
        return new RunResult(result.ExitCode, output.ToString());
    }
}

/// <summary>
/// The package as users get it: packed once per test run with a version of its own, restored by the
/// sample from the local folder feed into a fresh NuGet cache. The first passing ContainerTest run also
/// builds the image that the other tests use. At the end, the loop file system is let go of.
/// </summary>
public sealed class PackageFixture : IAsyncLifetime
{
    public string Version { get; } = $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
    public string NuGetCache { get; } = Directory.CreateTempSubdirectory("nspawn-nuget-").FullName;
    public string PackageDir { get; } = Directory.CreateTempSubdirectory("nspawn-package-").FullName;
    public string Nupkg => Path.Combine(Repo.Root, "artifacts/feed", $"Nspawn.Build.{Version}.nupkg");

    private Task<RunResult>? _firstRun;

    public async Task InitializeAsync()
    {
        var pack = await Shell.RunAsync("dotnet", ["pack", "src/Nspawn.Build", "-c", "Release", $"-p:Version={Version}"]);
        Assert.True(pack.ExitCode == 0, pack.ToString());
        ZipFile.ExtractToDirectory(Nupkg, PackageDir);
    }

    /// <summary>The first ContainerTest run of this test run: it builds the image if there is none yet.</summary>
    public Task<RunResult> FirstRunAsync() => _firstRun ??= RunSampleAsync([]);

    public Task<RunResult> RunSampleAsync(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null) =>
        Shell.RunAsync("dotnet", ["build", Repo.Sample, "-t:ContainerTest", $"-p:NspawnBuildVersion={Version}", .. args],
            new Dictionary<string, string?>(env ?? new Dictionary<string, string?>()) { ["NUGET_PACKAGES"] = NuGetCache });

    public async Task DisposeAsync()
    {
        if (_firstRun is not null)
            await Shell.RunAsync("dotnet", ["msbuild", Repo.Sample, "-t:NspawnUnmount", $"-p:NspawnBuildVersion={Version}"],
                new Dictionary<string, string?> { ["NUGET_PACKAGES"] = NuGetCache });
        Directory.Delete(NuGetCache, recursive: true);
        Directory.Delete(PackageDir, recursive: true);
        File.Delete(Nupkg);
    }
}

[CollectionDefinition(Name)]
public sealed class MachinesCollection : ICollectionFixture<PackageFixture>
{
    // Real machines, builds and mounts: one at a time, in one collection.
    public const string Name = "real machines";
}
