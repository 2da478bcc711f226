namespace Nspawn.Build.Tests;

/// <summary>
/// No external process can hang a build or a test: steps made to hang for real (a debootstrap that never
/// ends, a build lock that another build keeps, a guest whose systemctl never answers) end at their limit
/// with an error naming the step, and leave nothing running.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class TimeLimitTests(PackageFixture package) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-limits-").FullName;
    private readonly string _image = "hang-" + Guid.NewGuid().ToString("N")[..8];
    /// <summary>Far past every limit here: only turns a hang into a failure.</summary>
    private static readonly TimeSpan Hang = TimeSpan.FromMinutes(2);

    public Task InitializeAsync() => package.RequireImageAsync();

    public Task DisposeAsync()
    {
        File.Delete(TempNames.BuildLock(Repo.ChrootsDir, _image));
        Directory.Delete(_dir, recursive: true);
        Leaks.AssertNone();
        return Task.CompletedTask;
    }

    private ConsumerProject Project(string timeout) => new(package, _dir, Repo.ChrootsDir,
        properties: $"<NspawnImage>{_image}</NspawnImage><NspawnSuite>bookworm</NspawnSuite><NspawnImageBuildTimeout>{timeout}</NspawnImageBuildTimeout>");

    private static void AssertError(RunResult run, string hint)
    {
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains($"error {ErrorCodes.CommandFailed}: ", run.Output);
        Assert.Contains(hint, run.Output);
    }

    private void AssertNoImageLeft() =>
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(Repo.ChrootsDir).Select(Path.GetFileName), n => n!.Contains(_image) && !n.EndsWith(".build.lck"));

    [Fact]
    public async Task A_debootstrap_that_hangs_is_stopped_at_NspawnImageBuildTimeout_with_all_it_started()
    {
        // First on PATH: answers the version check, then hangs with a child of its own.
        var bin = Directory.CreateDirectory(Path.Combine(_dir, "bin")).FullName;
        var fake = Path.Combine(bin, "debootstrap");
        File.WriteAllText(fake, "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'debootstrap 1.0.128'; exit 0; }\nsleep 5151 &\nexec sleep 5152\n");
        File.SetUnixFileMode(fake, (UnixFileMode)0b111_101_101);

        var run = await Project("3").RunAsync(["-t:NspawnPrepareImages"],
            new Dictionary<string, string?> { ["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH") });

        AssertError(run, $"debootstrap of image '{_image}' did not finish within");
        Assert.Empty(Processes.Named("sleep 5151").Concat(Processes.Named("sleep 5152")));
        AssertNoImageLeft();
    }

    [Fact]
    public async Task A_build_lock_kept_by_another_build_is_waited_for_until_NspawnImageBuildTimeout()
    {
        // Another build of the same image that never ends: it holds the image's build lock.
        await using (new FileStream(TempNames.BuildLock(Repo.ChrootsDir, _image), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            var run = await Project("2").RunAsync(["-t:NspawnPrepareImages"]);
            AssertError(run, $"Waiting for another build of image '{_image}'");
        }
        AssertNoImageLeft();
    }

    [Fact]
    public async Task A_guest_whose_systemctl_never_answers_cannot_hang_the_API()
    {
        await using var machine = await EphemeralMachine.StartAsync(new StartOptions
        {
            ImageDir = Repo.ImageDir, LogicalName = "hang", StopTimeout = TimeSpan.FromSeconds(2),
        });
        await machine.WriteAllTextAsync("/usr/local/bin/systemctl", "#!/bin/sh\nexec sleep 5353\n", (UnixFileMode)0b111_101_101);

        // Each call ends by its own limit, as the TimeoutException that names it; a call that hangs fails the test.
        var e = await Assert.ThrowsAsync<TimeoutException>(() => Shell.EndsWithin(machine.WaitForUnitAsync("dbus.service", TimeSpan.FromSeconds(2)), Hang));
        Assert.Contains("systemctl is-active dbus.service", e.Message);
        // The command after a timeout, 'systemctl stop' of its unit, hangs too: it is given the machine's stop timeout.
        await Assert.ThrowsAsync<TimeoutException>(() => Shell.EndsWithin(machine.ExecAsync(["sleep", "5454"], new ExecOptions { Timeout = TimeSpan.FromSeconds(1) }), Hang));
        Assert.True(await Shell.WaitUntilAsync(() => Processes.Named("sleep 5353").Count == 0, Hang), "a hung systemctl still runs");
    }
}
