namespace Nspawn.Build.Tests;

/// <summary>
/// IPv4 forwarding is restored exactly as found (see <see cref="IpForwardingScenario"/>). The scenario runs in a
/// process of its own in a new network namespace (unshare --net), so the host's switches are never touched; needs root.
/// </summary>
public sealed class IpForwardingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-forwarding-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Forwarding_is_turned_back_off_only_when_it_was_ours_to_turn_off()
    {
        var run = await Shell.RunAsync("unshare", ["--net", "--", ConsumerProject.Dotnet, "exec", typeof(IpForwardingScenario).Assembly.Location, "forwarding", Path.Combine(_dir, "ip_forward.ours")],
            workingDir: "/");
        Assert.True(run.ExitCode == 0, run.ToString());
        foreach (var check in new[]
        {
            "on-for-our-network", "on-while-another-network-of-ours-needs-it", "off-with-the-last-network-of-ours", "left-on-when-it-was-on-before",
            "left-on-when-someone-else-turned-it-on-meanwhile", "left-off-when-someone-else-turned-it-off-meanwhile", "every-switch-as-found",
        })
            Assert.Contains($"ok {check}\n", run.Output);
    }
}
