using Nspawn.Testing;
using Xunit;

namespace Sample.Tests;

/// <summary>.NET code of the tests run inside the machine: system code tested where it belongs.</summary>
public class InvokeTests
{
    private readonly EphemeralMachine _machine = EphemeralMachine.FromEnvironment();

    [Fact]
    public async Task A_method_installs_and_starts_a_unit_inside_the_machine()
    {
        var state = await _machine.InvokeAsync(() => UnitInstaller.InstallAndStart("sample-sleeper", "/bin/sleep infinity"));

        Assert.Equal("active", state);
        // Checked from inside the machine, by its own systemd.
        Assert.Equal("enabled", (await _machine.ExecCheckedAsync("systemctl", "is-enabled", "sample-sleeper.service")).StandardOutput.Trim());
        await _machine.WaitForUnitAsync("sample-sleeper.service", TimeSpan.FromSeconds(10));
        Assert.Contains("ExecStart=/bin/sleep infinity", await _machine.ReadAllTextAsync("/etc/systemd/system/sample-sleeper.service"));
        Assert.False(File.Exists("/etc/systemd/system/sample-sleeper.service"), "the unit was written on the host");
    }

    [Fact]
    public async Task What_the_method_throws_in_the_machine_comes_back()
    {
        var e = await Assert.ThrowsAsync<GuestException>(() => _machine.InvokeAsync(() => UnitInstaller.InstallAndStart("not a name", "/bin/true")));
        Assert.Equal(typeof(ArgumentException).FullName, e.GuestType);
        Assert.Contains("not a plain unit name", e.GuestMessage);
        Assert.Contains(nameof(UnitInstaller.InstallAndStart), e.GuestStackTrace);
    }
}
