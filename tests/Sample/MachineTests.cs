using Nspawn.Testing;
using Xunit;

namespace Sample.Tests;

/// <summary>Tests that use the machine ContainerTest booted for them.</summary>
public class MachineTests
{
    private readonly EphemeralMachine _machine = EphemeralMachine.FromEnvironment();

    [Fact]
    public async Task The_machine_runs_Debian()
    {
        var osRelease = await _machine.ReadAllTextAsync("/etc/os-release");
        Assert.Contains("ID=debian", osRelease);
        Assert.Contains("ID=debian", (await _machine.ExecCheckedAsync("cat", "/etc/os-release")).StandardOutput);
    }

    [Fact]
    public async Task The_machine_is_the_one_named_in_the_environment()
    {
        Assert.Equal(Environment.GetEnvironmentVariable("NSPAWN_MACHINE"), _machine.Name);
        Assert.Equal(Environment.GetEnvironmentVariable("NSPAWN_LEADER_PID"), _machine.LeaderPid.ToString());
        // The first NspawnMachine item; on the private network (NspawnNetwork=private) its hostname is its logical name.
        Assert.Equal("server", _machine.LogicalName);
        Assert.Equal("server", (await _machine.ExecCheckedAsync("hostname")).StandardOutput.Trim());
    }

    [Fact]
    public async Task Systemd_inside_has_booted()
    {
        Assert.True(await _machine.IsSystemRunningAsync());
        await _machine.WaitForUnitAsync("dbus.service", TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Writes_stay_in_the_ephemeral_snapshot()
    {
        var file = $"/srv/written-by-test-{Guid.NewGuid():N}";
        await _machine.WriteAllTextAsync(file, "hello\n");
        Assert.Equal("hello\n", await _machine.ReadAllTextAsync(file));
        // The store is root's alone (0700): under sudo, the test looks at the image as root.
        using (ProcessPrivileges.Current.Root())
        {
            Assert.True(File.Exists(Path.Combine(_machine.ImageDir, "etc/os-release")), $"{_machine.ImageDir} should be the image");
            Assert.False(File.Exists(_machine.ImageDir + file), "a write inside the machine reached the image");
        }
    }
}

/// <summary>
/// Credentials belong to the whole process: while another test is inside a Root() scope (the API's own,
/// around the calls that need root), every thread is root. So this check runs alone, after the others.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public class PrivilegesCollection
{
    public const string Name = "privileges";
}

[Collection(PrivilegesCollection.Name)]
public class PrivilegesTests
{
    [Fact]
    public void Tests_run_as_the_invoking_user_and_regain_root_only_when_asked()
    {
        _ = EphemeralMachine.FromEnvironment(); // the API drops root on first use, under sudo
        var privileges = ProcessPrivileges.Current;
        if (Environment.GetEnvironmentVariable("SUDO_UID") is { } sudoUid && sudoUid != "0")
        {
            Assert.Equal(sudoUid, EffectiveUid());
            using (privileges.Root())
                Assert.Equal("0", EffectiveUid());
            Assert.Equal(sudoUid, EffectiveUid());
        }
        else
        {
            // Plain root (a CI job): nothing to drop to.
            Assert.False(privileges.UnderSudo);
            Assert.Equal("0", EffectiveUid());
        }
    }

    private static string EffectiveUid() =>
        File.ReadLines("/proc/self/status").First(l => l.StartsWith("Uid:")).Split('\t', StringSplitOptions.RemoveEmptyEntries)[2];
}
