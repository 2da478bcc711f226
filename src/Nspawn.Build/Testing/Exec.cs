namespace Nspawn.Testing;

/// <summary>How to boot a machine of the test's own.</summary>
public sealed record StartOptions
{
    /// <summary>The image folder; by default the image of the machine ContainerTest started.</summary>
    public string? ImageDir { get; init; }
    /// <summary>A plain name, part of the machine name.</summary>
    public string LogicalName { get; init; } = "test";
    public TimeSpan BootTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Snapshot or overlay; by default snapshot where the image is on btrfs, overlay elsewhere.</summary>
    public Nspawn.Build.EphemeralMode? Mode { get; init; }
    /// <summary>More nspawn options, such as "--bind-ro=/srv/data".</summary>
    public IReadOnlyList<string> NspawnArguments { get; init; } = [];
}

/// <summary>How to run a command in a machine. Every member is optional.</summary>
public sealed record ExecOptions
{
    /// <summary>A user of the machine (name or number); root by default.</summary>
    public string? User { get; init; }
    /// <summary>Variables for the command; it starts from a clean environment, as a service does.</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }
    public string? WorkingDirectory { get; init; }
    public string? StandardInput { get; init; }
    /// <summary>Past it, the command and everything it started are killed inside the machine and TimeoutException is thrown.</summary>
    public TimeSpan? Timeout { get; init; }
    /// <summary>Gets each line of output (standard output and error) as it comes, for a test log.</summary>
    public Action<string>? OnOutput { get; init; }
}

public sealed record ExecResult(int ExitCode, string StandardOutput, string StandardError);

/// <summary>A command ran in a machine and exited with a code other than 0.</summary>
public sealed class ExecException(IReadOnlyList<string> command, ExecResult result)
    : Exception($"'{string.Join(' ', command)}' exited with code {result.ExitCode}.\nstdout:\n{result.StandardOutput.TrimEnd()}\nstderr:\n{result.StandardError.TrimEnd()}")
{
    public ExecResult Result { get; } = result;
}
