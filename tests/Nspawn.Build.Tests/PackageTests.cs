using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace Nspawn.Build.Tests;

/// <summary>The packed package's layout, read from the .nupkg: what the tests' API brings to a test project. tests/stacks.sh builds test projects of every stack against it.</summary>
[Collection(MachinesCollection.Name)]
public sealed class PackageTests(PackageFixture package)
{
    private string Lib => Path.Combine(package.PackageDir, "lib/net8.0");

    private static (IReadOnlyList<string> References, IReadOnlyList<string> PublicTypes) Read(string dll)
    {
        var (references, types) = ReadVersions(dll);
        return (references.Select(r => r.Name).ToList(), types);
    }

    private static (IReadOnlyList<(string Name, Version Version)> References, IReadOnlyList<string> PublicTypes) ReadVersions(string dll)
    {
        using var pe = new PEReader(File.OpenRead(dll));
        var md = pe.GetMetadataReader();
        var references = md.AssemblyReferences.Select(md.GetAssemblyReference).Select(r => (md.GetString(r.Name), r.Version)).ToList();
        var types = md.TypeDefinitions.Select(md.GetTypeDefinition)
            .Where(t => (t.Attributes & TypeAttributes.VisibilityMask) == TypeAttributes.Public)
            .Select(t => $"{md.GetString(t.Namespace)}.{md.GetString(t.Name)}").Order().ToList();
        return (references, types);
    }

    /// <summary>The MTP extension, once per MTP major: outside lib/, so that only the targets reference it, in MTP applications.</summary>
    private string Extension(string build) => Path.Combine(package.PackageDir, "testingplatform", build, "Nspawn.Testing.Platform.dll");

    [Fact]
    public void The_tests_API_references_no_MSBuild_assembly()
    {
        var dlls = Directory.GetFiles(Lib, "*.dll").Select(Path.GetFileName).Order().ToList();
        // No MTP extension: every project compiles against lib/, and against an MTP newer than its own fails (CS1705).
        Assert.Equal(["Nspawn.Build.Core.dll", "Nspawn.Testing.Agent.dll", "Nspawn.Testing.dll"], dlls);
        foreach (var dll in dlls)
            Assert.DoesNotContain(Read(Path.Combine(Lib, dll!)).References, r => r.StartsWith("Microsoft.Build", StringComparison.Ordinal));
    }

    [Theory]
    // The oldest MTP of each major that the targets pick the build for: an application on any MTP of that major from it on compiles.
    [InlineData("v1", "1.5.3.0")]
    [InlineData("v2", "2.0.0.0")]
    public void Each_build_of_the_MTP_extension_is_compiled_against_the_oldest_MTP_of_its_major(string build, string mtp)
    {
        var (references, types) = ReadVersions(Extension(build));
        Assert.Equal(Version.Parse(mtp), Assert.Single(references, r => r.Name == "Microsoft.Testing.Platform").Version);
        Assert.DoesNotContain(references, r => r.Name.StartsWith("Microsoft.Build", StringComparison.Ordinal));
        // What MTP's generated entry point calls.
        Assert.Equal(["Nspawn.Testing.Platform.TestingPlatformBuilderHook"], types);
    }

    [Fact]
    public void Only_the_MTP_extension_references_MTP_and_the_package_does_not_depend_on_it()
    {
        foreach (var dll in new[] { "Nspawn.Build.Core.dll", "Nspawn.Testing.dll" })
            Assert.DoesNotContain(Read(Path.Combine(Lib, dll)).References, r => r.StartsWith("Microsoft.Testing", StringComparison.Ordinal));
        Assert.DoesNotContain(Read(Path.Combine(package.PackageDir, "tasks/net8.0/Nspawn.Build.dll")).References, r => r.StartsWith("Microsoft.Testing", StringComparison.Ordinal));
        // The test application brings its own MTP: a dependency would add MTP (and its build files) to VSTest projects.
        Assert.DoesNotContain("Microsoft.Testing", File.ReadAllText(Path.Combine(package.PackageDir, "Nspawn.Build.nuspec")));
    }

    [Fact]
    public void Every_public_type_a_test_project_compiles_against_is_in_the_Nspawn_Testing_namespaces()
    {
        var compiled = Directory.GetFiles(Lib, "*.dll").Concat(Directory.GetFiles(Path.Combine(package.PackageDir, "testingplatform"), "*.dll", SearchOption.AllDirectories)).ToList();
        Assert.Contains(compiled, d => d.EndsWith("/Nspawn.Testing.dll", StringComparison.Ordinal));
        var outside = compiled.SelectMany(d => Read(d).PublicTypes.Select(t => $"{t} ({Path.GetRelativePath(package.PackageDir, d)})"))
            .Where(t => !t.StartsWith("Nspawn.Testing.", StringComparison.Ordinal)).ToList();
        Assert.True(outside.Count == 0, "public types outside Nspawn.Testing: " + string.Join(", ", outside));
    }

    [Fact]
    public void The_public_surface_is_what_a_user_calls()
    {
        Assert.Equal(["Nspawn.Testing.EphemeralMode", "Nspawn.Testing.NetworkMode", "Nspawn.Testing.NspawnException"], Read(Path.Combine(Lib, "Nspawn.Build.Core.dll")).PublicTypes);
        Assert.Equal(["Nspawn.Testing.Bind", "Nspawn.Testing.EphemeralMachine", "Nspawn.Testing.ExecException", "Nspawn.Testing.ExecOptions", "Nspawn.Testing.ExecResult",
            "Nspawn.Testing.GuestException", "Nspawn.Testing.ProcessPrivileges", "Nspawn.Testing.StartOptions"], Read(Path.Combine(Lib, "Nspawn.Testing.dll")).PublicTypes);
        // The agent is a program the machines run, nothing a test calls.
        Assert.Empty(Read(Path.Combine(Lib, "Nspawn.Testing.Agent.dll")).PublicTypes);
    }

    [Fact]
    public void The_tasks_load_from_their_own_folder()
    {
        var tasks = Path.Combine(package.PackageDir, "tasks/net8.0");
        // The agent next to the core, which binds it into the machines that ContainerTest starts.
        foreach (var dll in new[] { "Nspawn.Build.dll", "Nspawn.Build.Core.dll", "Nspawn.Testing.Agent.dll", "CliWrap.dll", "NuGet.Versioning.dll" })
            Assert.True(File.Exists(Path.Combine(tasks, dll)), dll + " is missing from tasks/net8.0");
        Assert.False(File.Exists(Path.Combine(tasks, "Nspawn.Testing.dll")));
        Assert.False(File.Exists(Path.Combine(tasks, "Nspawn.Testing.Platform.dll")));
        Assert.DoesNotContain(Directory.GetFiles(tasks, "Microsoft.Build*"), _ => true);
    }

    [Fact]
    public void The_task_assemblies_and_the_tests_API_are_compiled_ahead_for_the_SDKs_runtime()
    {
        // ReadyToRun code sits behind the CLI header's managed native header (READYTORUN_HEADER); plain IL has none.
        static bool ReadyToRun(string dll)
        {
            using var pe = new PEReader(File.OpenRead(dll));
            return pe.PEHeaders.CorHeader!.ManagedNativeHeaderDirectory.Size > 0;
        }
        foreach (var dll in new[] { "Nspawn.Build.dll", "Nspawn.Build.Core.dll", "CliWrap.dll", "NuGet.Versioning.dll" })
            Assert.True(ReadyToRun(Path.Combine(package.PackageDir, "tasks/net8.0", dll)), dll + " in tasks/net8.0 is not ReadyToRun");
        // The test host would JIT them on a test's first calls (another runtime ignores the native code and JITs the IL).
        Assert.True(ReadyToRun(Path.Combine(Lib, "Nspawn.Build.Core.dll")), "Nspawn.Build.Core.dll in lib/net8.0 is not ReadyToRun");
        Assert.True(ReadyToRun(Path.Combine(Lib, "Nspawn.Testing.dll")), "Nspawn.Testing.dll in lib/net8.0 is not ReadyToRun");
    }

    [Fact]
    public async Task The_native_agent_is_packed_where_the_core_finds_it_in_the_tasks_and_in_a_test_projects_output()
    {
        // The package holds the native agent of the architecture that packed it: this one.
        var rid = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        var relative = Path.Combine("runtimes", rid, "native", Nspawn.Build.Agent.NativeAgent.FileName);
        // Next to the tasks' core, and as a NuGet native asset, which the SDK copies next to a test project's core.
        foreach (var dir in new[] { Path.Combine(package.PackageDir, "tasks/net8.0"), package.PackageDir })
        {
            Assert.Equal(relative, Nspawn.Build.Agent.NativeAgent.Find(dir));
            Assert.Equal("\u007fELF"u8.ToArray(), File.ReadAllBytes(Path.Combine(dir, relative))[..4]);
        }
        await package.RequireImageAsync();
        // The output the first run just built (another configuration's may be older).
        var core = Directory.GetFiles(Path.Combine(Repo.Sample, "bin"), "Nspawn.Build.Core.dll", SearchOption.AllDirectories).MaxBy(File.GetLastWriteTimeUtc);
        Assert.NotNull(core);
        Assert.Equal(relative, Nspawn.Build.Agent.NativeAgent.Find(Path.GetDirectoryName(core)!));
    }
}
