namespace Nspawn.Build.Tests;

/// <summary>
/// Under 'sudo tests/all.sh' the test host itself is not under sudo (see <see cref="SudoInvoker"/>): no test can drop it
/// to the invoking user for those after it; the processes it starts still get sudo's variables.
/// </summary>
[Trait("Category", "Unit")]
public sealed class SudoInvokerTests
{
    [Fact]
    public void The_test_host_has_no_sudo_variables_and_stays_root()
    {
        Assert.All(new[] { "SUDO_USER", "SUDO_UID", "SUDO_GID" }, name => Assert.Null(Environment.GetEnvironmentVariable(name)));
        Assert.False(ProcessPrivileges.Current.UnderSudo);
    }

    [Fact]
    public async Task A_process_the_tests_start_gets_them_back_and_a_test_may_set_its_own()
    {
        var inherited = await Shell.RunAsync("sh", ["-c", "echo \"${SUDO_UID:-none}\""], workingDir: "/");
        Assert.Equal(SudoInvoker.Variables.GetValueOrDefault("SUDO_UID", "none"), inherited.Output.Trim());
        var own = await Shell.RunAsync("sh", ["-c", "echo \"${SUDO_UID:-none} ${SUDO_USER:-none}\""], new Dictionary<string, string?> { ["SUDO_UID"] = "65534", ["SUDO_USER"] = null }, "/");
        Assert.Equal("65534 none", own.Output.Trim());
    }
}
