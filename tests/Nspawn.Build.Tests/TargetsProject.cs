using System.Security;

namespace Nspawn.Build.Tests;

/// <summary>
/// A project of a few lines that imports this repository's build/ files, as NuGet imports the package's, run with
/// 'dotnet msbuild': the targets' own logic (defaults, checks) with no package, no root and no machine. The tasks
/// assembly is one that does not exist, so that a target that reaches a task of ours says so (MSB4062).
/// </summary>
public sealed class TargetsProject
{
    public const string NoTasks = "/nonexistent/Nspawn.Build.dll";

    public string Path { get; }

    public TargetsProject(string dir, string properties = "")
    {
        Directory.CreateDirectory(dir);
        Path = System.IO.Path.Combine(dir, System.IO.Path.GetFileName(dir) + ".proj");
        var build = SecurityElement.Escape(System.IO.Path.Combine(Repo.Root, "build"));
        File.WriteAllText(Path, $"""
            <Project>
              <PropertyGroup>
                <NspawnBuildTasksAssembly>{NoTasks}</NspawnBuildTasksAssembly>
                {properties}
              </PropertyGroup>
              <Import Project="{build}/Nspawn.Build.props" />
              <Import Project="{build}/Nspawn.Build.targets" />
            </Project>
            """);
    }

    public Task<RunResult> RunAsync(params string[] args) =>
        Shell.RunAsync(ConsumerProject.Dotnet, ["msbuild", Path, "-nologo", "-tl:off", .. args], workingDir: System.IO.Path.GetDirectoryName(Path));

    /// <summary>A property as the project evaluates it.</summary>
    public async Task<string> PropertyAsync(string name, params string[] args)
    {
        var run = await RunAsync([$"-getProperty:{name}", .. args]);
        Assert.True(run.ExitCode == 0, run.ToString());
        return run.Output.Trim();
    }
}
