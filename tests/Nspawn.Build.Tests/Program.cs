namespace Nspawn.Build.Tests;

/// <summary>
/// The test assembly also runs as a program, for checks that must have a process of their own: credentials
/// belong to a whole process, so what runs as a sudo user (the privilege scenario, a copy) never runs inside the test host;
/// nor does what must run in a network namespace of its own (the forwarding scenario), nor a machine left to the process's exit.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        switch (args)
        {
            case ["privileges"]:
                return PrivilegeScenario.Run();
            case ["forwarding", var marker]:
                // In a network namespace of its own (unshare --net): the host's switches are never touched.
                return IpForwardingScenario.Run(marker);
            case ["copy-from", var machinePath, var hostDirectory]:
                // As the tests of a sudo user run: the API drops to that user on first use.
                await EphemeralMachine.FromEnvironment().CopyFromAsync(machinePath, hostDirectory);
                return 0;
            case ["forget", var imageDir]:
                // A test that boots a machine of its own and never stops it: the process's exit must.
                var forgotten = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = imageDir, LogicalName = "forgotten" });
                Console.WriteLine($"started {forgotten.Name} {forgotten.LeaderPid} {ProcessInfo.StartTime(forgotten.LeaderPid)}");
                return 0;
            case ["save-logs", var resultsDir, var console]:
                return await LogsScenario.RunAsync(resultsDir, console);
            default:
                return 2;
        }
    }
}
