namespace Nspawn.Build.Tests;

/// <summary>The limits themselves, on real processes and locks that never end.</summary>
[Trait("Category", "Unit")]
public sealed class TimeLimitUnitTests
{
    [Fact]
    public async Task A_tool_past_its_limit_is_killed_and_named()
    {
        var e = await Assert.ThrowsAsync<NspawnException>(() => HostCommand.RunAsync("sleep", ["5555"], CancellationToken.None, TimeSpan.FromSeconds(1)));
        Assert.Equal(ErrorCodes.CommandFailed, e.Code);
        Assert.Contains("'sleep 5555' did not finish within 1 s", e.Message);
        Assert.True(await Shell.WaitUntilAsync(() => Processes.Named("sleep 5555").Count == 0, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task A_piped_tool_past_its_limit_is_killed_and_named()
    {
        var e = await Assert.ThrowsAsync<NspawnException>(() => HostCommand.RunPipedAsync(
            Cli.Wrap("sleep").WithArguments(["5656"]).WithStandardOutputPipe(PipeTarget.ToStream(Stream.Null)), "btrfs send of image 'x'", TimeSpan.FromSeconds(1), CancellationToken.None));
        Assert.Equal(ErrorCodes.CommandFailed, e.Code);
        Assert.Contains("btrfs send of image 'x' did not finish within 1 s", e.Message);
        Assert.True(await Shell.WaitUntilAsync(() => Processes.Named("sleep 5656").Count == 0, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task A_lock_that_is_never_released_is_waited_for_until_the_limit()
    {
        var path = Path.Combine(Path.GetTempPath(), $"nspawn-lock-{Guid.NewGuid():N}");
        try
        {
            await using (new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
            {
                var waited = 0;
                var e = await Assert.ThrowsAsync<NspawnException>(() => FileLock.AcquireAsync(path, () => waited++, TimeSpan.FromSeconds(1), "Waiting for the test", CancellationToken.None));
                Assert.Equal(ErrorCodes.CommandFailed, e.Code);
                Assert.Contains("Waiting for the test: the lock", e.Message);
                Assert.Equal(1, waited);
            }
            // Released: taken at once.
            await using var taken = await FileLock.AcquireAsync(path, () => { }, TimeSpan.FromSeconds(1), "Waiting", CancellationToken.None);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
