namespace Nspawn.Build.Tests;

[Trait("Category", "Unit")]
public sealed class GuestCommandTests
{
    [Fact]
    public void Without_agent_and_machined_no_guest_program_is_started_from_the_host()
    {
        // Started from outside, a guest program would run without the guest's seccomp filter: the path is gone, with a coded error.
        var machine = new Machine("web", "nspawn-web-00000000", "bookworm", "/nonexistent", Environment.ProcessId, 1, 0, 0, null, null, []) { AgentProblem = "no runtime" };
        var e = Assert.Throws<NspawnException>(() => GuestCommand.AsUnit(machine, "u", ["true"]));
        Assert.Equal(ErrorCodes.NoAgent, e.Code);
        Assert.Contains("no runtime", e.Message);
        Assert.Contains("seccomp", e.Message);
    }
}
