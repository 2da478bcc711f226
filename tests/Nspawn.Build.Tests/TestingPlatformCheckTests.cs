namespace Nspawn.Build.Tests;

/// <summary>
/// ContainerTest's first step for an MTP application (Nspawn.Build.TestingPlatform.targets): a
/// Microsoft.Testing.Platform.MSBuild that cannot pass the machines on is NSPAWN0051, before anything else runs.
/// The targets run with 'dotnet msbuild' on a small project: no package, no root, no machine.
/// </summary>
[Trait("Category", "Unit")]
public sealed class TestingPlatformCheckTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-mtpcheck-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>An MTP application whose targets come from Microsoft.Testing.Platform.MSBuild of this version, as NuGet restores it.</summary>
    private TargetsProject Application(string version) => new(Path.Combine(_dir, "mtp-" + version), $"""
        <IsTestingPlatformApplication>true</IsTestingPlatformApplication>
        <MicrosoftTestingPlatformMSBuildTaskFolder>/home/u/.nuget/packages/microsoft.testing.platform.msbuild/{version}/buildTransitive/../_MSBuildTasks/netstandard2.0/</MicrosoftTestingPlatformMSBuildTaskFolder>
        """);

    [Fact]
    public async Task ContainerTest_of_an_MTP_application_with_an_older_MTP_MSBuild_than_2_4_is_NSPAWN0051_before_anything_runs()
    {
        var runs = await Task.WhenAll(new[] { "1.9.1", "2.3.0", "2.4.0", "2.10.1" }.Select(v => Application(v).RunAsync("-t:ContainerTest")));
        foreach (var old in runs[..2])
        {
            Assert.True(old.ExitCode != 0, old.ToString());
            Assert.Contains("error NSPAWN0051: ContainerTest hands its machines to a Microsoft.Testing.Platform application", old.Output);
            Assert.Contains("Microsoft.Testing.Platform.MSBuild 2.4 or later", old.Output);
            // Nothing after the check ran: not even the first task of ours, which would fail to load (MSB4062).
            Assert.DoesNotContain("MSB4062", old.Output);
        }
        Assert.Contains("this project has 1.9.1.", runs[0].Output);
        // 2.4 and later pass the check: the build goes on to the first task of ours.
        foreach (var recent in runs[2..])
        {
            Assert.DoesNotContain("NSPAWN0051", recent.Output);
            Assert.Contains("MSB4062", recent.Output);
            Assert.Contains("ResolveNspawnSettings", recent.Output);
        }
    }
}
