namespace Nspawn.Build.Tests;

[Trait("Category", "Unit")]
public sealed class GuestCommandTests
{
    [Fact]
    public void The_bounding_set_is_exactly_the_leaders()
    {
        // nspawn's default set: no CAP_NET_ADMIN (12), CAP_SYS_MODULE (16), CAP_SYS_RAWIO (17), CAP_SYSLOG (34), ...
        var status = "Name:\tsystemd\nCapInh:\t0000000000000000\nCapBnd:\t00000000fcecafff\nCapAmb:\t0000000000000000\n";
        Assert.Equal("-all,+cap_0,+cap_1,+cap_2,+cap_3,+cap_4,+cap_5,+cap_6,+cap_7,+cap_8,+cap_9,+cap_10,+cap_11,+cap_13,+cap_15,+cap_18,+cap_19,+cap_21,+cap_22,+cap_23,+cap_26,+cap_27,+cap_28,+cap_29,+cap_30,+cap_31",
            GuestCommand.BoundingSet(status));
        Assert.Equal("-all,+cap_40", GuestCommand.BoundingSet("CapBnd:\t0000010000000000\n"));
        Assert.Equal("-all", GuestCommand.BoundingSet("CapBnd:\t0000000000000000\n"));
    }

    [Fact]
    public void A_machine_whose_leader_is_gone_is_never_entered()
    {
        // A PID whose start time does not match is not the machine's leader (it may be another process by now).
        var machine = new Machine("gone", "nspawn-gone-00000000", "bookworm", "/nonexistent", Environment.ProcessId, 1, 0, 0, null, null, []);
        var e = Assert.Throws<InvalidOperationException>(() => GuestCommand.Arguments(machine, ["true"]));
        Assert.Contains("is not running", e.Message);
    }
}
