using Nspawn.Testing;
using Xunit;
using Xunit.Abstractions;

namespace Sample.Tests;

/// <summary>
/// The guest's journal in a test: read back what the test logged, and, when a test fails, what the machine
/// logged while it ran, in the test's output (which the test runner prints, and the TRX keeps, for failed tests).
/// </summary>
public class JournalTests(ITestOutputHelper output)
{
    private readonly EphemeralMachine _machine = EphemeralMachine.FromEnvironment();

    [Fact]
    public async Task The_journal_holds_what_the_test_logged()
    {
        var since = DateTimeOffset.UtcNow;
        var greeting = $"hello {Guid.NewGuid():N}";
        var unit = $"sample-greeter-{Guid.NewGuid():N}"[..23];
        await _machine.ExecCheckedAsync("logger", "--tag", "sample", greeting);
        await _machine.ExecCheckedAsync("systemd-run", $"--unit={unit}", "--wait", "--quiet", "echo", "greeter says hi");

        Assert.Contains(await _machine.GetJournalAsync(since), line => line.Contains(" sample[") && line.EndsWith(": " + greeting, StringComparison.Ordinal));
        var greeter = await _machine.GetJournalAsync(since, unit: unit + ".service");
        Assert.Contains(greeter, line => line.EndsWith("greeter says hi", StringComparison.Ordinal));
        Assert.DoesNotContain(greeter, line => line.Contains(greeting));
    }

    [Fact]
    public Task Fails_when_asked_to() => WithJournalOnFailureAsync(async () =>
    {
        // The package's own tests set SAMPLE_FAIL=1 to check that a failing suite fails the build, keeps the machine's
        // logs (this line among them) and still stops the machine.
        await _machine.ExecCheckedAsync("logger", "--tag", "sample", "checking SAMPLE_FAIL");
        Assert.NotEqual("1", Environment.GetEnvironmentVariable("SAMPLE_FAIL"));
    });

    /// <summary>Runs the test; when it fails, writes the machine's journal for the test's duration to its output.</summary>
    private async Task WithJournalOnFailureAsync(Func<Task> test)
    {
        var since = DateTimeOffset.UtcNow;
        try
        {
            await test();
        }
        catch
        {
            output.WriteLine($"The journal of machine {_machine.Name} during the test:");
            foreach (var line in await _machine.GetJournalAsync(since))
                output.WriteLine(line);
            throw;
        }
    }
}
