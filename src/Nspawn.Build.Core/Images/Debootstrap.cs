namespace Nspawn.Build;

/// <summary>debootstrap of an image into a new folder, under eatmydata where it is installed, with progress.</summary>
internal static class Debootstrap
{
    public static async Task RunAsync(ImageSpec spec, string target, Action<string> progress, TimeSpan limit, CancellationToken cancellationToken)
    {
        var debootstrap = ToolLocator.Require(Tool.Debootstrap);
        var eatmydata = ToolLocator.Find(Tool.Eatmydata.Name);
        // The store is mounted nodev; debootstrap needs working device nodes in its target.
        await using var devices = await DeviceMount.CreateAsync(target, cancellationToken);
        string[] argv = eatmydata is null ? [debootstrap, .. spec.DebootstrapArguments(devices.Where)] : [eatmydata, debootstrap, .. spec.DebootstrapArguments(devices.Where)];

        var tracker = new DebootstrapProgress(TimeSpan.FromSeconds(5));
        void OnLine(string line)
        {
            if (tracker.OnLine(line, DateTime.UtcNow) is { } report)
                progress(report);
        }

        tracker.Heartbeat(DateTime.UtcNow);
        progress($"debootstrap {spec.Suite} from {spec.Mirror} ({spec.Variant}{(spec.Include.Count > 0 ? ", with " + string.Join(',', spec.Include) : "")}){(eatmydata is null ? "" : " under eatmydata")}");
        // In cgroups of its own, so that a cancel kills all it started (wget, dpkg, tar), orphans included. On cancel
        // debootstrap first gets SIGINT (it unmounts what it mounted in the target), then is killed after 5 s (the README says so).
        // Without a terminal (CI) the log is all a user sees: a silent debootstrap still reports, at least every 10 s.
        using var stopHeartbeat = new CancellationTokenSource();
        var heartbeat = HeartbeatAsync(tracker, progress, stopHeartbeat.Token);
        int exitCode;
        LineTail tail;
        try
        {
            (exitCode, tail) = await ScopedChild.RunAsync(TempNames.Machine("debootstrap"), argv, OnLine, $"debootstrap of image '{spec.Name}'",
                grace: TimeSpan.FromSeconds(5), limit, inSystemdUnit: false, cancellationToken);
        }
        finally
        {
            // Awaited, so that no report comes after the task that logs it has returned.
            stopHeartbeat.Cancel();
            await heartbeat;
        }
        if (exitCode != 0)
        {
            var log = Path.Combine(target, "debootstrap/debootstrap.log");
            var detail = File.Exists(log) ? string.Join('\n', File.ReadLines(log).TakeLast(15)) : "";
            throw new NspawnException(ErrorCodes.DebootstrapFailed,
                $"debootstrap of image '{spec.Name}' ({spec.Suite} from {spec.Mirror}) failed with exit code {exitCode} while {tracker.Stage}. Check that the suite exists on the mirror and that the mirror can be reached. Last output:\n{tail}\n{detail}".TrimEnd());
        }
    }

    private static async Task HeartbeatAsync(DebootstrapProgress tracker, Action<string> progress, CancellationToken stop)
    {
        using var tick = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await tick.WaitForNextTickAsync(stop))
                if (tracker.Heartbeat(DateTime.UtcNow) is { } report)
                    progress(report);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
