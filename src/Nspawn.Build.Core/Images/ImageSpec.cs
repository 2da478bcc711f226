using System.Text.Json.Serialization;

namespace Nspawn.Build;

/// <summary>What an image is made of. Its <see cref="Stamp"/> changes whenever its content would.</summary>
internal sealed record ImageSpec(string Name, string Suite, string Mirror, string Variant, IReadOnlyList<string> Include)
{
    /// <summary>Mask what a short-lived test machine does not need (<see cref="SlimMasks"/>): a faster boot.</summary>
    public bool Slim { get; init; }

    /// <summary>A derived image starts as a snapshot of this image (no debootstrap), and is rebuilt when it changes.</summary>
    public ImageSpec? Base { get; init; }

    /// <summary>Packages debootstrap leaves out (--exclude).</summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];
    /// <summary>The architecture (--arch); the host's when empty.</summary>
    public string Arch { get; init; } = "";
    /// <summary>Archive components (--components); main when empty.</summary>
    public IReadOnlyList<string> Components { get; init; } = [];
    /// <summary>A script run inside the new image after debootstrap (packages, users, configuration).</summary>
    public string? SetupScript { get; init; }
    /// <summary>Host files copied into the image before the setup script: source path and absolute destination.</summary>
    public IReadOnlyList<ImageFile> Files { get; init; } = [];

    /// <summary>
    /// What a slim image masks, and why a test machine can do without it:
    /// the timers run daily or weekly maintenance (apt downloads and upgrades, dpkg backups, ext4 scrubbing,
    /// /tmp cleaning) that never comes due in a machine that lives for minutes; console-getty offers a login
    /// prompt nobody uses (tests run commands through nsenter or systemd-run); the utmp records log boots and
    /// runlevels for 'last' and 'who'; and journal-flush copies the journal to /var/log/journal, which the
    /// snapshot throws away at stop anyway (journalctl still reads it from /run).
    /// </summary>
    public static readonly IReadOnlyList<string> SlimMasks =
    [
        "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer", "systemd-tmpfiles-clean.timer",
        "console-getty.service", "systemd-update-utmp.service", "systemd-update-utmp-runlevel.service", "systemd-journal-flush.service",
    ];

    /// <summary>Bump when the way images are made changes, so that old images are rebuilt.</summary>
    public const int FormatVersion = 1;

    [JsonIgnore]
    public string Stamp =>
        (Base is null ? "" : $"base: {Base.Name} {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Base.Stamp)))[..16]}\n") +
        $"format: {FormatVersion}\nsuite: {Suite}\nmirror: {Mirror}\nvariant: {Variant}\ninclude: {string.Join(',', Include)}\n" +
        (Slim ? $"slim: {string.Join(',', SlimMasks)}\n" : "") +
        (Exclude.Count > 0 ? $"exclude: {string.Join(',', Exclude)}\n" : "") +
        (Arch != "" ? $"arch: {Arch}\n" : "") +
        (Components.Count > 0 ? $"components: {string.Join(',', Components)}\n" : "") +
        string.Concat(Files.Select(f => $"file: {f.Destination} {Hash(f.Source)}\n")) +
        (SetupScript is null ? "" : $"setup-script: {Hash(SetupScript)}\n");

    /// <summary>The content, not the path or the time, is what the image depends on.</summary>
    private static string Hash(string file) =>
        Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(file))).ToLowerInvariant();

    public IReadOnlyList<string> DebootstrapArguments(string target)
    {
        var args = new List<string> { $"--variant={Variant}" };
        if (Include.Count > 0)
            args.Add($"--include={string.Join(',', Include)}");
        if (Exclude.Count > 0)
            args.Add($"--exclude={string.Join(',', Exclude)}");
        if (Arch != "")
            args.Add($"--arch={Arch}");
        if (Components.Count > 0)
            args.Add($"--components={string.Join(',', Components)}");
        args.AddRange([Suite, target, Mirror]);
        return args;
    }
}
