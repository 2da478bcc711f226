namespace Nspawn.Build;

/// <summary>
/// An end in a fixed order (a pool before the network its boots join, machines before the folder that lists them):
/// every step runs, even when an earlier one threw, and the failures come back in order for the caller to report.
/// </summary>
internal static class OrderedEnd
{
    public static async Task<IReadOnlyList<Exception>> RunAsync(params Func<Task>[] steps)
    {
        var failures = new List<Exception>();
        foreach (var step in steps)
        {
            try
            {
                await step();
            }
            catch (Exception e)
            {
                // Whatever it was, what comes after it must still be undone.
                failures.Add(e);
            }
        }
        return failures;
    }
}
