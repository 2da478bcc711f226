using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.Versioning;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Nspawn.Build.Tests;

/// <summary>
/// What lets MSBuild of SDK 8, 9 and 10 load the tasks: MSBuild runs them on its own runtime (.NET 8 in SDK 8), so
/// everything in tasks/ must target net8.0 or older and be compiled against the MSBuild of SDK 8.0.1xx (17.8) or
/// older. This machine may have only a newer SDK: these read the built assemblies and the restore, no root, no machine.
/// </summary>
[Trait("Category", "Unit")]
public sealed partial class TaskAssemblyTests
{
    /// <summary>The MSBuild of SDK 8.0.100, the oldest SDK the README names.</summary>
    private static readonly Version OldestMSBuild = new(17, 8);

    /// <summary>The assemblies of ours that the package puts in tasks/net8.0 (PackageTests checks the layout).</summary>
    public static TheoryData<string> Ours() => ["Nspawn.Build", "Nspawn.Build.Core", "Nspawn.Testing.Agent"];

    [Theory]
    [MemberData(nameof(Ours))]
    public void Each_assembly_of_the_tasks_targets_net8_and_references_no_newer_runtime(string name)
    {
        var dll = Path.Combine(Path.GetDirectoryName(typeof(Nspawn.Build.Tasks.ResolveNspawnSettings).Assembly.Location)!, name + ".dll");
        using var pe = new PEReader(File.OpenRead(dll));
        var md = pe.GetMetadataReader();
        Assert.Equal(".NETCoreApp,Version=v8.0", TargetFramework(md));
        var runtime = md.AssemblyReferences.Select(md.GetAssemblyReference).Single(r => md.GetString(r.Name) == "System.Runtime");
        Assert.Equal(8, runtime.Version.Major);
    }

    [Fact]
    public void The_tasks_are_compiled_against_the_MSBuild_of_SDK_8_and_take_no_package_built_for_a_newer_runtime()
    {
        using var assets = JsonDocument.Parse(File.ReadAllText(Path.Combine(Repo.Root, "src/Nspawn.Build/obj/project.assets.json")));
        var targets = assets.RootElement.GetProperty("targets");
        Assert.Equal(["net8.0"], targets.EnumerateObject().Select(t => t.Name));
        var libraries = targets.GetProperty("net8.0").EnumerateObject().ToList();
        var msbuild = libraries.Where(l => l.Name.StartsWith("Microsoft.Build.", StringComparison.Ordinal)).ToList();
        Assert.Equal(["Microsoft.Build.Framework", "Microsoft.Build.Utilities.Core"], msbuild.Select(l => l.Name.Split('/')[0]).Order());
        foreach (var library in msbuild)
            Assert.True(Version.Parse(library.Name.Split('/')[1]) < new Version(OldestMSBuild.Major, OldestMSBuild.Minor + 1), $"{library.Name} is newer than the MSBuild of SDK 8.0.1xx ({OldestMSBuild})");
        var newer = libraries
            .SelectMany(l => l.Value.TryGetProperty("runtime", out var runtime) ? runtime.EnumerateObject().Select(a => $"{l.Name}: {a.Name}") : [])
            .Where(asset => LibFolder().Match(asset) is { Success: true } m && m.Groups[1].Value.StartsWith("net", StringComparison.Ordinal)
                && !m.Groups[1].Value.StartsWith("netstandard", StringComparison.Ordinal) && int.Parse(m.Groups[2].Value) > 8)
            .ToList();
        Assert.True(newer.Count == 0, "Built for a newer runtime than MSBuild's on SDK 8: " + string.Join(", ", newer));
        Assert.Contains(libraries, l => l.Name.StartsWith("CliWrap/", StringComparison.Ordinal));
    }

    private static string TargetFramework(MetadataReader md)
    {
        foreach (var handle in md.GetAssemblyDefinition().GetCustomAttributes())
        {
            var attribute = md.GetCustomAttribute(handle);
            if (attribute.Constructor.Kind != HandleKind.MemberReference)
                continue;
            var type = md.GetTypeReference((TypeReferenceHandle)md.GetMemberReference((MemberReferenceHandle)attribute.Constructor).Parent);
            if (md.GetString(type.Name) != nameof(TargetFrameworkAttribute))
                continue;
            // The blob: prolog (2 bytes), then the framework name as a serialized string.
            var blob = md.GetBlobReader(attribute.Value);
            blob.ReadUInt16();
            return blob.ReadSerializedString()!;
        }
        throw new InvalidOperationException("no TargetFrameworkAttribute");
    }

    [GeneratedRegex(@": lib/(net(?:standard)?(\d+)[^/]*)/")]
    private static partial Regex LibFolder();
}
