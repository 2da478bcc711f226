namespace Nspawn.Build.Tests;

/// <summary>
/// Saves a stopped machine's logs as a build under sudo does (see <see cref="UserFilesTests"/>), in a process of its own:
/// the sudo user comes from the environment, which belongs to the whole process. Its console is <paramref name="console"/>.
/// </summary>
internal static class LogsScenario
{
    public static async Task<int> RunAsync(string resultsDir, string console)
    {
        var machine = new Machine("web", "nspawn-web-1", "bookworm", "/c/bookworm", 1, 1, 1, 1, null, null, []) { ResultsDir = resultsDir, ConsoleFile = console };
        var saved = await MachineLogs.SaveAsync(machine, TimeSpan.FromSeconds(30), CancellationToken.None);
        Console.WriteLine(saved);
        return 0;
    }
}
