namespace Nspawn.Build.Tests;

/// <summary>The launcher without MSBuild, on real machines booted from the image that the first ContainerTest run built.</summary>
[Collection(MachinesCollection.Name)]
public sealed class LauncherTests(PackageFixture package) : IAsyncLifetime
{
    public async Task InitializeAsync()
    {
        await package.RequireImageAsync();
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private static LaunchOptions Options(string logical = "t", string? imageDir = null, double bootTimeout = 60) =>
        new(logical, imageDir ?? Repo.ImageDir) { BootTimeout = TimeSpan.FromSeconds(bootTimeout), UseSystemdRun = false };

    private static async Task<string> ExecAsync(Machine m, params string[] argv) =>
        (await Cli.Wrap("nsenter").WithArguments(["-t", m.LeaderPid.ToString(), "--all", "--", .. argv])
            .ExecuteBufferedAsync()).StandardOutput.Trim();

    [Fact]
    public async Task A_machine_boots_from_a_snapshot_and_leaves_nothing_when_stopped()
    {
        var m = await MachineLauncher.StartAsync(Options(), CancellationToken.None);
        try
        {
            Assert.True(ProcessInfo.IsRunning(m.LeaderPid, m.LeaderStartTime));
            Assert.NotNull(m.Snapshot);
            Assert.StartsWith(Path.Combine(Repo.ChrootsDir, ".#machine.bookworm"), m.Snapshot);
            Assert.True(Directory.Exists(m.Snapshot));
            Assert.Contains(await ExecAsync(m, "systemctl", "is-system-running", "--wait"), new[] { "running", "degraded" });
            Assert.NotEmpty(m.Cgroups);
            // nspawn and the guest are in the machine's own cgroups (nspawn moves itself into a child, 'supervisor', in some).
            Assert.All(m.Cgroups, dir => Assert.Contains(m.NspawnPid, new CgroupScope([dir]).Processes()));
            Assert.Contains(m.LeaderPid, new CgroupScope(m.Cgroups).Processes());
        }
        finally
        {
            await MachineLauncher.StopAsync(m, CancellationToken.None);
        }
        Assert.False(ProcessInfo.IsRunning(m.NspawnPid, m.NspawnStartTime));
        Assert.False(Directory.Exists(m.Snapshot));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Several_machines_from_one_image_boot_at_once_each_in_its_own_cgroup()
    {
        for (var round = 0; round < 2; round++)
        {
            var starts = Enumerable.Range(0, 4).Select(i => MachineLauncher.StartAsync(Options($"p{i}"), CancellationToken.None)).ToList();
            try
            {
                await Task.WhenAll(starts);
                var machines = starts.Select(t => t.Result).ToList();
                Assert.Equal(4, machines.Select(m => m.Snapshot).Distinct().Count());
                Assert.Equal(4, machines.SelectMany(m => m.Cgroups).Distinct().Count() / machines[0].Cgroups.Count);
                foreach (var m in machines)
                    Assert.Contains(await ExecAsync(m, "systemctl", "is-system-running", "--wait"), new[] { "running", "degraded" });
            }
            finally
            {
                await Task.WhenAll(starts.Where(t => t.IsCompletedSuccessfully)
                    .Select(t => MachineLauncher.StopAsync(t.Result, CancellationToken.None)));
            }
            Leaks.AssertNone();
        }
    }

    [Fact]
    public async Task A_boot_past_the_timeout_fails_with_the_console_and_leaves_nothing()
    {
        var e = await Assert.ThrowsAsync<NspawnException>(() => MachineLauncher.StartAsync(Options(bootTimeout: 0.05), CancellationToken.None));
        Assert.Equal(ErrorCodes.BootTimedOut, e.Code);
        Assert.Contains("NspawnBootTimeout", e.Message);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task An_image_without_systemd_fails_to_boot_with_a_clear_error()
    {
        await using var broken = await TempImage.WithoutInitAsync();
        var e = await Assert.ThrowsAsync<NspawnException>(() => MachineLauncher.StartAsync(Options(imageDir: broken.Dir), CancellationToken.None));
        Assert.Equal(ErrorCodes.BootFailed, e.Code);
        Assert.Contains("systemd", e.Message);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_missing_image_is_reported_before_anything_starts()
    {
        var e = await Assert.ThrowsAsync<NspawnException>(() => MachineLauncher.StartAsync(Options(imageDir: Path.Combine(Repo.ChrootsDir, "nothing-here")), CancellationToken.None));
        Assert.Equal(ErrorCodes.ImageMissing, e.Code);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_machine_name_in_use_is_refused()
    {
        var m = await MachineLauncher.StartAsync(Options(), CancellationToken.None);
        try
        {
            var again = Options() with { MachineName = m.Name };
            var e = await Assert.ThrowsAsync<NspawnException>(() => MachineLauncher.StartAsync(again, CancellationToken.None));
            Assert.Equal(ErrorCodes.BadMachineName, e.Code);
            Assert.True(ProcessInfo.IsRunning(m.LeaderPid, m.LeaderStartTime), "the running machine was disturbed");
        }
        finally
        {
            await MachineLauncher.StopAsync(m, CancellationToken.None);
        }
        Leaks.AssertNone();
    }

    [Fact]
    public async Task Stop_cleans_up_after_a_killed_nspawn()
    {
        var m = await MachineLauncher.StartAsync(Options(), CancellationToken.None);
        ProcessInfo.Signal(m.NspawnPid, m.NspawnStartTime, ProcessInfo.SigKill);
        Assert.True(await ProcessInfo.WaitForExitAsync(m.NspawnPid, m.NspawnStartTime, TimeSpan.FromSeconds(5), CancellationToken.None));
        // nspawn is gone but its guest and snapshot are not: Stop must find and remove both.
        Assert.True(Directory.Exists(m.Snapshot));
        await MachineLauncher.StopAsync(m, CancellationToken.None);
        Assert.True(await ProcessInfo.WaitForExitAsync(m.LeaderPid, m.LeaderStartTime, TimeSpan.FromSeconds(5), CancellationToken.None));
        Assert.False(Directory.Exists(m.Snapshot));
        Leaks.AssertNone();
    }
}
