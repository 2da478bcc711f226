namespace Nspawn.Build;

/// <summary>
/// The CPU share of machines that boot while the project compiles (ContainerTest): an eighth of a normal share until the
/// build is done, so that the compile the tests wait for keeps the CPU and the boot takes what is left, then a full share.
/// Only where the machine's cgroups have a cpu controller of ours (the direct launcher: cgroup v1's cpu.shares, cgroup2's
/// cpu.weight); elsewhere it changes nothing. An eighth, not less: a boot beside a long compile still ends in its time.
/// </summary>
internal sealed class BootPriority
{
    public const double Low = 1.0 / 8;

    private readonly object _gate = new();
    private readonly List<CgroupScope> _lowered = [];
    private bool _raised;

    /// <summary>A machine's scope, just made: its share is lowered unless the build is done already.</summary>
    public void Lower(CgroupScope scope)
    {
        lock (_gate)
        {
            if (_raised)
                return;
            scope.SetCpuShare(Low);
            _lowered.Add(scope);
        }
    }

    /// <summary>The build is done: every machine lowered so far, and any made from now on, has a full share.</summary>
    public void Raise()
    {
        lock (_gate)
        {
            _raised = true;
            foreach (var scope in _lowered)
                scope.SetCpuShare(1);
            _lowered.Clear();
        }
    }
}
