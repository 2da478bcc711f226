namespace Nspawn.Build.Tests;

/// <summary>
/// ProcessPrivileges across real threads. Credentials belong to a whole process, so the scenario runs in a
/// process of its own (this assembly run as a program, see <see cref="PrivilegeScenario"/>), as root with a
/// sudo user of 'nobody'.
/// </summary>
public sealed class PrivilegeTests
{
    [Fact]
    public async Task Scopes_on_several_threads_never_leave_the_process_with_more_privilege_than_they_asked_for()
    {
        var run = await Shell.RunAsync(ConsumerProject.Dotnet, ["exec", typeof(PrivilegeScenario).Assembly.Location, "privileges"],
            new Dictionary<string, string?> { ["SUDO_UID"] = "65534", ["SUDO_GID"] = "65534", ["SUDO_USER"] = null },
            workingDir: "/");
        Assert.True(run.ExitCode == 0, run.ToString());
        foreach (var check in new[]
        {
            "user-waits-for-root-of-another-thread", "user-scope-runs-as-user", "dropped-when-no-scope-is-open",
            "root-waits-for-user-of-another-thread", "root-scope-runs-as-root", "nested-on-one-thread",
            "a-nested-scope-that-would-wait-fails-instead", "many-threads-each-scope-gets-what-it-asked-for", "dropped-after-the-crowd",
        })
            Assert.Contains($"ok {check}\n", run.Output);
    }
}
