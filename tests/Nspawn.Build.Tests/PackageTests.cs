using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace Nspawn.Build.Tests;

/// <summary>The packed package's layout, read from the .nupkg: what the tests' API brings to a test project.</summary>
[Collection(MachinesCollection.Name)]
public sealed class PackageTests(PackageFixture package)
{
    private string Lib => Path.Combine(package.PackageDir, "lib/net8.0");

    private static (IReadOnlyList<string> References, IReadOnlyList<string> PublicTypes) Read(string dll)
    {
        using var pe = new PEReader(File.OpenRead(dll));
        var md = pe.GetMetadataReader();
        var references = md.AssemblyReferences.Select(h => md.GetString(md.GetAssemblyReference(h).Name)).ToList();
        var types = md.TypeDefinitions.Select(md.GetTypeDefinition)
            .Where(t => (t.Attributes & TypeAttributes.VisibilityMask) == TypeAttributes.Public)
            .Select(t => $"{md.GetString(t.Namespace)}.{md.GetString(t.Name)}").Order().ToList();
        return (references, types);
    }

    [Fact]
    public void The_tests_API_references_no_MSBuild_assembly()
    {
        var dlls = Directory.GetFiles(Lib, "*.dll").Select(Path.GetFileName).Order().ToList();
        Assert.Equal(["Nspawn.Build.Core.dll", "Nspawn.Testing.Agent.dll", "Nspawn.Testing.dll", "Nspawn.Testing.Platform.dll"], dlls);
        foreach (var dll in dlls)
            Assert.DoesNotContain(Read(Path.Combine(Lib, dll!)).References, r => r.StartsWith("Microsoft.Build", StringComparison.Ordinal));
    }

    [Fact]
    public void Only_the_MTP_extension_references_MTP_and_the_package_does_not_depend_on_it()
    {
        Assert.Contains("Microsoft.Testing.Platform", Read(Path.Combine(Lib, "Nspawn.Testing.Platform.dll")).References);
        foreach (var dll in new[] { "Nspawn.Build.Core.dll", "Nspawn.Testing.dll" })
            Assert.DoesNotContain(Read(Path.Combine(Lib, dll)).References, r => r.StartsWith("Microsoft.Testing", StringComparison.Ordinal));
        Assert.DoesNotContain(Read(Path.Combine(package.PackageDir, "tasks/net8.0/Nspawn.Build.dll")).References, r => r.StartsWith("Microsoft.Testing", StringComparison.Ordinal));
        // The test application brings its own MTP: a dependency would add MTP (and its build files) to VSTest projects.
        Assert.DoesNotContain("Microsoft.Testing", File.ReadAllText(Path.Combine(package.PackageDir, "Nspawn.Build.nuspec")));
    }

    [Fact]
    public void The_public_surface_is_what_a_user_calls()
    {
        Assert.Equal(["Nspawn.Build.EphemeralMode", "Nspawn.Build.NetworkMode", "Nspawn.Build.NspawnException"], Read(Path.Combine(Lib, "Nspawn.Build.Core.dll")).PublicTypes);
        Assert.Equal(["Nspawn.Testing.Bind", "Nspawn.Testing.EphemeralMachine", "Nspawn.Testing.ExecException", "Nspawn.Testing.ExecOptions", "Nspawn.Testing.ExecResult",
            "Nspawn.Testing.GuestException", "Nspawn.Testing.ProcessPrivileges", "Nspawn.Testing.StartOptions"], Read(Path.Combine(Lib, "Nspawn.Testing.dll")).PublicTypes);
        // The agent is a program the machines run, nothing a test calls.
        Assert.Empty(Read(Path.Combine(Lib, "Nspawn.Testing.Agent.dll")).PublicTypes);
        // What MTP's generated entry point calls.
        Assert.Equal(["Nspawn.Testing.Platform.TestingPlatformBuilderHook"], Read(Path.Combine(Lib, "Nspawn.Testing.Platform.dll")).PublicTypes);
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
}
