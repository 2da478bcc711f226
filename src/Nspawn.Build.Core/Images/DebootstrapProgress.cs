namespace Nspawn.Build;

/// <summary>
/// Turns debootstrap's "I: ..." lines into progress reports such as "configuring packages (40/109)": a report
/// when a later stage begins, and at most one every <see cref="Interval"/> within a stage. debootstrap goes
/// back and forth between unpacking and configuring; the stage only moves forward and the counts add up.
/// When debootstrap says nothing for <see cref="Quiet"/> (a slow mirror, a long configure), <see cref="Heartbeat"/>
/// still reports, so that a log without a terminal (CI) shows progress at least every 10 s. Thread-safe: lines
/// and heartbeats come from different threads.
/// </summary>
internal sealed class DebootstrapProgress(TimeSpan interval)
{
    private static readonly string[] Stages = ["starting", "reading the archive index", "resolving dependencies", "downloading", "extracting", "unpacking", "configuring", "done"];

    /// <summary>How long a silence lasts before a heartbeat; a 1 s tick keeps every gap under 10 s.</summary>
    public static readonly TimeSpan Quiet = TimeSpan.FromSeconds(8);

    private readonly object _gate = new();
    private readonly int[] _counts = new int[Stages.Length];
    private int _stage;
    private DateTime _lastReport;

    public TimeSpan Interval { get; } = interval;
    public string Stage => Stages[_stage];

    public string? OnLine(string line, DateTime now)
    {
        lock (_gate)
            return OnLineLocked(line, now);
    }

    /// <summary>A report when nothing was reported for <see cref="Quiet"/> since <paramref name="now"/>'s first call; else null.</summary>
    public string? Heartbeat(DateTime now)
    {
        lock (_gate)
        {
            if (_lastReport == default)
                _lastReport = now;
            if (now - _lastReport < Quiet)
                return null;
            _lastReport = now;
            return $"still {Describe()}";
        }
    }

    private string? OnLineLocked(string line, DateTime now)
    {
        if (!line.StartsWith("I: ", StringComparison.Ordinal))
            return null;
        var text = line[3..].Trim();
        var words = text.Split(' ');
        var stage = Array.IndexOf(Stages, Classify(words[0], text));
        if (stage < 0)
            return null;
        // "Retrieving libc6 2.36-9" names a package; "Retrieving Packages" and friends are the index.
        if (stage >= 3 && words[0] is "Retrieving" or "Extracting" or "Unpacking" or "Configuring")
            _counts[stage]++;
        if (stage > _stage)
        {
            _stage = stage;
            _lastReport = now;
            return Describe();
        }
        if (stage < _stage || now - _lastReport < Interval)
            return null;
        _lastReport = now;
        return Describe();
    }

    private static string? Classify(string verb, string text) => verb switch
    {
        "Retrieving" when text is "Retrieving InRelease" or "Retrieving Release" or "Retrieving Release.gpg" or "Retrieving Packages" => "reading the archive index",
        "Checking" or "Valid" => "reading the archive index",
        "Validating" => null,
        "Resolving" => "resolving dependencies",
        "Retrieving" => "downloading",
        "Extracting" => "extracting",
        "Installing" or "Unpacking" => "unpacking",
        "Configuring" => "configuring",
        "Base" => "done",
        _ => null,
    };

    private string Describe()
    {
        var total = _counts[3];
        return Stage switch
        {
            "downloading" => $"downloading packages ({total})",
            "extracting" or "unpacking" or "configuring" when total > 0 => $"{Stage} packages ({Math.Min(_counts[_stage], total)}/{total})",
            _ => Stage,
        };
    }
}
