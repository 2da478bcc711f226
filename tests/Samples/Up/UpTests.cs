using System.Runtime.InteropServices;
using Nspawn.Testing;
using Xunit;

namespace Up.Tests;

/// <summary>Run inside the machine by InvokeAsync.</summary>
public static class Probe
{
    public static string HostName() => Environment.MachineName;
}

/// <summary>
/// Tests a user runs without sudo (dotnet test, an IDE) against the machines 'sudo dotnet build -t:NspawnUp' left
/// running. The package's tests run them twice and read UP_SEEN to see that both runs met the same machines.
/// </summary>
public class UpTests
{
    [DllImport("libc")]
    private static extern uint geteuid();

    [Fact]
    public void The_tests_do_not_run_as_root() => Assert.NotEqual(0u, geteuid());

    [Fact]
    public async Task A_machine_of_the_tests_own_needs_root_and_says_so()
    {
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => EphemeralMachine.StartAsync(cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("needs root", refused.Message);
        Assert.Contains("sudo dotnet build -t:ContainerTest", refused.Message);
    }

    [Fact]
    public async Task Commands_files_and_calls_reach_the_up_machine()
    {
        var token = TestContext.Current.CancellationToken;
        var machine = EphemeralMachine.FromEnvironment();
        Assert.Equal("root", (await machine.ExecCheckedAsync(["id", "-un"], cancellationToken: token)).StandardOutput.Trim());

        var stamp = Guid.NewGuid().ToString();
        await machine.WriteAllTextAsync("/tmp/up.txt", stamp, cancellationToken: token);
        Assert.Equal(stamp, await machine.ReadAllTextAsync("/tmp/up.txt", token));

        var hostName = (await machine.ExecCheckedAsync(["hostname"], cancellationToken: token)).StandardOutput.Trim();
        Assert.Equal(hostName, await machine.InvokeAsync(() => Probe.HostName(), cancellationToken: token));

        var local = Directory.CreateTempSubdirectory("up-").FullName;
        try
        {
            await machine.CopyFromAsync("/tmp/up.txt", local, token);
            Assert.Equal(stamp, File.ReadAllText(Path.Combine(local, "up.txt")));
            File.WriteAllText(Path.Combine(local, "back.txt"), stamp);
            await machine.CopyToAsync(Path.Combine(local, "back.txt"), "/tmp", token);
            Assert.Equal(stamp, await machine.ReadAllTextAsync("/tmp/back.txt", token));
        }
        finally
        {
            Directory.Delete(local, recursive: true);
        }

        Assert.NotEmpty(await machine.GetJournalAsync(cancellationToken: token));
        if (Environment.GetEnvironmentVariable("UP_SEEN") is { Length: > 0 } seen)
            File.AppendAllText(seen, machine.Name + "\n");
    }
}
