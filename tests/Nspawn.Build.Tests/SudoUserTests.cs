using System.Security;

namespace Nspawn.Build.Tests;

/// <summary>
/// A real unprivileged user with sudo rights runs 'sudo dotnet build -t:ContainerTest' on a copy of the
/// sample in their home: the tests run as that user (the sample asserts it), reach the machines, and leave
/// no root-owned file in the user's tree, not even what a machine wrote in a writable bind.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class SudoUserTests(PackageFixture package) : IAsyncLifetime
{
    private const string User = "nspawn-test-user";
    private string Home => $"/home/{User}";

    public async Task InitializeAsync()
    {
        await package.FirstRunAsync();
        await Cli.Wrap("userdel").WithArguments(["-r", User]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
        await Cli.Wrap("useradd").WithArguments(["--create-home", "--shell", "/bin/sh", User]).ExecuteBufferedAsync();
        File.WriteAllText($"/etc/sudoers.d/{User}", $"{User} ALL=(ALL) NOPASSWD: ALL\n");
        File.SetUnixFileMode($"/etc/sudoers.d/{User}", UnixFileMode.UserRead | UnixFileMode.GroupRead);
    }

    public async Task DisposeAsync()
    {
        File.Delete($"/etc/sudoers.d/{User}");
        await Cli.Wrap("userdel").WithArguments(["-r", User]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
    }

    /// <summary>A folder of the user's with these files and a feed config pointing at the packed package, all the user's.</summary>
    private async Task<string> UserCopyAsync(string name, IEnumerable<string> files)
    {
        var copy = Path.Combine(Home, name);
        Directory.CreateDirectory(copy);
        foreach (var file in files)
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(copy, "nuget.config"), $"""
            <configuration><packageSources><clear />
              <add key="local" value="{SecurityElement.Escape(Path.Combine(Repo.Root, "artifacts/feed"))}" />
              <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
            </packageSources></configuration>
            """);
        await Cli.Wrap("chown").WithArguments(["-R", $"{User}:{User}", copy]).ExecuteAsync();
        return copy;
    }

    [Fact]
    public async Task A_user_runs_ContainerTest_with_sudo_and_keeps_their_files()
    {
        // The user's own copy of the sample (sources only), with a feed config pointing at the packed package.
        var sample = await UserCopyAsync("sample", Directory.EnumerateFiles(Repo.Sample).Where(f => !f.EndsWith("nuget.config")));

        Task<RunResult> ContainerTestAsync(string fail) => Shell.RunAsync("runuser", ["-u", User, "--", "sudo", "env", $"NUGET_PACKAGES={package.NuGetCache}", $"SAMPLE_FAIL={fail}",
            "dotnet", "build", "-t:ContainerTest", $"-p:NspawnBuildVersion={package.Version}", $"-p:NspawnChrootsDir={Repo.ChrootsDir}"], workingDir: sample);
        var run = await ContainerTestAsync("");
        Assert.True(run.ExitCode == 0, run.ToString());
        // Among them: the sample's own check that it runs as the invoking user and regains root only when asked.
        run.AssertMatches($@"Passed!\s+- Failed:\s+0, Passed:\s+{PackageFixture.SampleTests}");
        // A failing run saves the machine's logs in the user's tree: they are the user's too.
        var failing = await ContainerTestAsync("1");
        Assert.NotEqual(0, failing.ExitCode);
        Assert.True(File.Exists(Path.Combine(sample, "TestResults/nspawn/server/journal.txt")), failing.Output);

        // What the server wrote in its writable bind (NspawnBind, obj/shared) is the user's too.
        var written = Path.Combine(sample, "obj/shared/from-server.txt");
        Assert.Equal("server\n", File.ReadAllText(written));
        var owner = await Cli.Wrap("stat").WithArguments(["-c", "%U", written]).ExecuteBufferedAsync();
        Assert.Equal(User, owner.StandardOutput.Trim());

        var rootOwned = await Cli.Wrap("find").WithArguments([Home, "-uid", "0"]).ExecuteBufferedAsync();
        Assert.True(rootOwned.StandardOutput.Trim() == "", "root-owned files in the user's tree:\n" + rootOwned.StandardOutput);
        Assert.True(Directory.Exists(Path.Combine(sample, "obj")) && Directory.Exists(Path.Combine(sample, "bin")));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_user_runs_dotnet_test_in_MTP_mode_with_sudo_and_keeps_their_files()
    {
        // The user's copy of the MTP sample (its global.json puts dotnet test in MTP mode), with the samples' build settings.
        var sample = await UserCopyAsync("mtp", Directory.EnumerateFiles(Path.Combine(Repo.Samples, "Mtp")).Append(Path.Combine(Repo.Samples, "Directory.Build.props")));

        var run = await Shell.RunAsync("runuser", ["-u", User, "--", "sudo", "env", $"NUGET_PACKAGES={package.NuGetCache}",
            "dotnet", "test", $"-p:NspawnBuildVersion={package.Version}", $"-p:NspawnChrootsDir={Repo.ChrootsDir}", "-p:NspawnOnTest=true"], workingDir: sample);
        Assert.True(run.ExitCode == 0, run.ToString());
        run.AssertMatches(@"succeeded:\s+6\s");

        // The build gives back what it wrote; the test host controller what the run wrote after it (test results, logs).
        var rootOwned = await Cli.Wrap("find").WithArguments([Home, "-uid", "0"]).ExecuteBufferedAsync();
        Assert.True(rootOwned.StandardOutput.Trim() == "", "root-owned files in the user's tree:\n" + rootOwned.StandardOutput);
        Leaks.AssertNone();
    }
}
