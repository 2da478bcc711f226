namespace Nspawn.Build;

/// <summary>A host program we run, the Debian package that provides it and the oldest version we support.</summary>
internal sealed record Tool(string Name, string AptPackage, string? MinimumVersion = null, string[]? VersionArgs = null)
{
    // --notify-ready and X_NSPAWN_LEADER_PID need a recent nspawn; 247 is Debian bullseye's.
    public static readonly Tool SystemdNspawn = new("systemd-nspawn", "systemd-container", "247", ["--version"]);
    public static readonly Tool SystemdRun = new("systemd-run", "systemd");
    public static readonly Tool Systemctl = new("systemctl", "systemd");
    public static readonly Tool Machinectl = new("machinectl", "systemd-container");
    public static readonly Tool Journalctl = new("journalctl", "systemd");
    public static readonly Tool Btrfs = new("btrfs", "btrfs-progs");
    public static readonly Tool MkfsBtrfs = new("mkfs.btrfs", "btrfs-progs");
    // 1.0.124 knows bookworm and later suites without a symlink of its own.
    public static readonly Tool Debootstrap = new("debootstrap", "debootstrap", "1.0.124", ["--version"]);
    public static readonly Tool Eatmydata = new("eatmydata", "eatmydata");
    public static readonly Tool Mount = new("mount", "mount");
    public static readonly Tool Umount = new("umount", "mount");
    public static readonly Tool Bash = new("bash", "bash");
    public static readonly Tool Cp = new("cp", "coreutils");
    public static readonly Tool Find = new("find", "findutils");
    // A private network: the bridge and the addresses (ip), inside a machine's network namespace (nsenter), NAT (nft).
    public static readonly Tool Ip = new("ip", "iproute2");
    public static readonly Tool Nsenter = new("nsenter", "util-linux");
    public static readonly Tool Nft = new("nft", "nftables");
    public static readonly Tool Losetup = new("losetup", "mount");
    public static readonly Tool Setpriv = new("setpriv", "util-linux");
    // A user namespace with a given map, whose handle an overlay machine's idmapped image needs (--map-users: 2.38).
    public static readonly Tool Unshare = new("unshare", "util-linux", "2.38", ["--version"]);
    public static readonly Tool Sleep = new("sleep", "coreutils");
}
