using System.Formats.Tar;
using System.Globalization;

namespace Nspawn.Build.Tests;

/// <summary>
/// The guest is not trusted. Its binaries that the API runs (systemd-run, systemctl, tar; cat no longer) are
/// replaced by an attacker's script, and what the guest sends back is crafted: neither may act on the host
/// with more than the guest's own confinement, nor put anything outside the folder a copy goes to.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class SecurityGuestTests(PackageFixture package) : IAsyncLifetime
{
    private const string Evidence = "/var/log/nspawn-attack";
    private readonly string _host = Directory.CreateTempSubdirectory("nspawn-guest-").FullName;
    private EphemeralMachine _machine = null!;

    public async Task InitializeAsync()
    {
        await package.FirstRunAsync();
        _machine = await EphemeralMachine.StartAsync(new StartOptions
        {
            ImageDir = Repo.ImageDir, LogicalName = "guest", StopTimeout = TimeSpan.FromSeconds(5),
        });
    }

    public async Task DisposeAsync()
    {
        await _machine.DisposeAsync();
        Directory.Delete(_host, recursive: true);
        Leaks.AssertNone();
    }

    private Machine Record => MachineRegistry.List().Single(r => r.Machine.Name == _machine.Name).Machine;

    /// <summary>
    /// Each replaced binary records what it could do, then runs the real one: its capabilities, cgroups,
    /// our environment, the host's kernel log (CAP_SYSLOG, which guests lack) and a block device of the host
    /// (denied to the machine by its device policy), through a device node it makes.
    /// </summary>
    private static string AttackScript(string device) => $$"""
        #!/bin/sh
        name=${0##*/}
        log={{Evidence}}/$name-$$
        {
          while read -r key value; do case $key in CapBnd:|NoNewPrivs:) echo "$key $value";; esac; done < /proc/self/status
          printf 'self:'; while read -r l; do printf ' %s' "$l"; done < /proc/self/cgroup; echo
          printf 'leader:'; while read -r l; do printf ' %s' "$l"; done < /proc/1/cgroup; echo
          case "$NSPAWN_TEST_SECRET" in '') echo 'environment: clean';; *) echo "environment: leaked $NSPAWN_TEST_SECRET";; esac
          if dmesg > /dev/null 2>&1; then echo 'kernel-log: read'; else echo 'kernel-log: denied'; fi
          mknod /dev/nspawn-evil-$$ b {{device}} 2> /dev/null
          if dd if=/dev/nspawn-evil-$$ of=/dev/null bs=512 count=1 2> /dev/null; then echo 'host-disk: read'; else echo 'host-disk: denied'; fi
          rm -f /dev/nspawn-evil-$$
        } > "$log" 2>&1
        exec /usr/local/lib/nspawn-real/$name "$@"
        """;

    [Fact]
    public async Task Guest_binaries_the_API_runs_get_no_more_than_the_guests_own_confinement()
    {
        // The loop device of the chroots folder: a disk of the host, which the machine's device policy denies.
        var loop = MountTable.Find(MountTable.Read(), Repo.ChrootsDir)!.Source;
        var device = File.ReadAllText($"/sys/class/block/{Path.GetFileName(loop)}/dev").Trim().Replace(':', ' ');
        // The machine's own device policy (nspawn's allow list, set by the launcher): no block device at all.
        var devices = Record.Cgroups.SingleOrDefault(d => d.StartsWith("/sys/fs/cgroup/devices/", StringComparison.Ordinal));
        Assert.True(devices is not null, "this host has no cgroup v1 devices hierarchy to give the machine a device policy");
        Assert.DoesNotContain(File.ReadAllLines(Path.Combine(devices, "devices.list")), rule => rule.StartsWith("b ") || rule.StartsWith("a "));
        var secret = new EnvironmentScope("NSPAWN_TEST_SECRET", "secret-of-the-host");
        try
        {
            await _machine.WriteAllTextAsync("/usr/local/lib/nspawn-attack", AttackScript(device), (UnixFileMode)0b111_101_101);
            await _machine.ExecCheckedAsync("sh", "-c", $"""
                mkdir -p /usr/local/lib/nspawn-real {Evidence}
                for b in cat tar systemctl systemd-run id; do mv /usr/bin/$b /usr/local/lib/nspawn-real/$b; cp /usr/local/lib/nspawn-attack /usr/bin/$b; done
                """);

            // Every operation of the API, each of which used to run one of these binaries with all of the host's capabilities.
            Assert.Contains("ID=debian", await _machine.ReadAllTextAsync("/etc/os-release"));
            await _machine.WriteAllTextAsync("/root/written", "written\n");
            Assert.Equal("hello\n", (await _machine.ExecCheckedAsync("echo", "hello")).StandardOutput);
            // The control: a variable a test gives a command is what the probe sees, so its 'clean' below means the host's was not passed.
            await _machine.ExecCheckedAsync(["id", "-u"], new ExecOptions { Environment = new Dictionary<string, string> { ["NSPAWN_TEST_SECRET"] = "given-by-the-test" } });
            File.WriteAllText(Path.Combine(_host, "in.txt"), "in\n");
            await _machine.CopyToAsync(Path.Combine(_host, "in.txt"), "/root");
            await _machine.CopyFromAsync("/root/written", _host);
            Assert.Equal("written\n", File.ReadAllText(Path.Combine(_host, "written")));
            await _machine.WaitForUnitAsync("dbus.service", TimeSpan.FromSeconds(30));
            await Assert.ThrowsAsync<TimeoutException>(() => _machine.ExecAsync(["sleep", "4646"], new ExecOptions { Timeout = TimeSpan.FromSeconds(1) }));
        }
        finally
        {
            secret.Dispose();
        }

        // What each run of a replaced binary could do, as it recorded it in the machine.
        var records = Directory.GetFiles($"/proc/{_machine.LeaderPid}/root{Evidence}")
            .ToDictionary(f => Path.GetFileName(f), f => File.ReadAllLines(f).Select(l => l.Split(' ', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : ""));

        var leaderBounding = ulong.Parse(File.ReadLines($"/proc/{_machine.LeaderPid}/status").Single(l => l.StartsWith("CapBnd:")).Split('\t')[1], NumberStyles.HexNumber);
        foreach (var (name, record) in records)
        {
            var bounding = ulong.Parse(record["CapBnd:"], NumberStyles.HexNumber);
            Assert.True((bounding & ~leaderBounding) == 0, $"{name} had capabilities {bounding:x} beyond the guest's {leaderBounding:x}");
            // In the machine's cgroup namespace (its leader's cgroups are seen from inside), and inside its cgroups (no '..').
            Assert.DoesNotContain(_machine.Name, record["leader:"]);
            Assert.DoesNotContain("..", record["self:"]);
            Assert.Contains(record["environment:"], new[] { "clean", "leaked given-by-the-test" });
            Assert.Equal("denied", record["kernel-log:"]);
            Assert.Equal("denied", record["host-disk:"]);
        }

        // The host's variable reached none; the one the test gave reached its command only.
        Assert.Equal("id", Assert.Single(records, r => r.Value["environment:"] != "clean").Key.Split('-')[0]);

        var ran = records.Keys.Select(k => k[..k.LastIndexOf('-')]).ToHashSet();
        // The attack did run (through systemctl and tar), not as systemd-run (commands are the agent's children) nor as cat
        // (files are read by the agent itself).
        Assert.True(_machine.Agent is not null, _machine.AgentProblem);
        Assert.Superset(new HashSet<string> { "systemctl", "tar" }, ran);
        Assert.DoesNotContain("systemd-run", ran);
        Assert.DoesNotContain("cat", ran);
    }

    /// <summary>A guest's tar replaced by one that sends a crafted archive instead.</summary>
    private async Task SendsAsync(params TarEntry[] entries)
    {
        using var archive = new MemoryStream();
        await using (var writer = new TarWriter(archive, TarEntryFormat.Gnu, leaveOpen: true))
            foreach (var entry in entries)
                await writer.WriteEntryAsync(entry);
        await _machine.WriteFileAsync("/srv/crafted.tar", archive.ToArray());
        await _machine.WriteAllTextAsync("/usr/local/bin/tar", "#!/bin/sh\nexec cat /srv/crafted.tar\n", (UnixFileMode)0b111_101_101);
    }

    private static GnuTarEntry Entry(string name, string content, UnixFileMode mode = (UnixFileMode)0b110_100_100) =>
        new(TarEntryType.RegularFile, name) { Mode = mode, Uid = 0, Gid = 0, DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content)) };

    [Fact]
    public async Task A_setuid_root_file_copied_out_lands_owned_by_the_caller_without_setuid()
    {
        await SendsAsync(
            new GnuTarEntry(TarEntryType.Directory, "evil/") { Mode = (UnixFileMode)0b010_111_111_101, Uid = 0, Gid = 0 },
            Entry("evil/rootshell", "#!/bin/sh\n", (UnixFileMode)0b100_111_101_101),
            Entry("evil/groupshell", "#!/bin/sh\n", (UnixFileMode)0b010_111_101_101),
            new GnuTarEntry(TarEntryType.HardLink, "evil/again") { LinkName = "evil/rootshell", Mode = (UnixFileMode)0b100_111_101_101 },
            new GnuTarEntry(TarEntryType.SymbolicLink, "evil/near") { LinkName = "rootshell" });
        await _machine.CopyFromAsync("/srv/evil", _host);

        var (uid, gid) = ProcessPrivileges.Current.Caller;
        foreach (var (name, mode) in new[] { ("evil", 0b111_111_101), ("evil/rootshell", 0b111_101_101), ("evil/groupshell", 0b111_101_101), ("evil/again", 0b111_101_101) })
        {
            var status = FileStatus.Of(Path.Combine(_host, name))!;
            Assert.Equal(((UnixFileMode)mode, uid, gid, 1u), (status.Permissions, status.Uid, status.Gid, status.IsDirectory ? 1u : status.Links));
        }
        Assert.Equal("rootshell", new FileInfo(Path.Combine(_host, "evil/near")).LinkTarget);

        // Run as a sudo user's tests are: copies land owned by that user.
        File.SetUnixFileMode(_host, (UnixFileMode)0b111_101_101);
        var file = Path.Combine(_host, "machines.json");
        File.WriteAllText(file, MachinesFile.Serialize([Record]));
        var target = Directory.CreateDirectory(Path.Combine(_host, "nobody")).FullName;
        await Cli.Wrap("chown").WithArguments(["65534:65534", target]).ExecuteAsync();
        var run = await Shell.RunAsync(ConsumerProject.Dotnet, ["exec", typeof(Program).Assembly.Location, "copy-from", "/srv/evil", target],
            new Dictionary<string, string?> { ["NSPAWN_MACHINES_FILE"] = file, ["SUDO_UID"] = "65534", ["SUDO_GID"] = "65534", ["SUDO_USER"] = null }, "/");
        Assert.True(run.ExitCode == 0, run.ToString());
        var rootshell = FileStatus.Of(Path.Combine(target, "evil/rootshell"))!;
        Assert.Equal(((UnixFileMode)0b111_101_101, 65534u, 65534u), (rootshell.Permissions, rootshell.Uid, rootshell.Gid));
    }

    public static TheoryData<string, TarEntry[]> CraftedArchives => new()
    {
        { "a symlink out, then a file through it", [new GnuTarEntry(TarEntryType.Directory, "evil/"), new GnuTarEntry(TarEntryType.SymbolicLink, "evil/out") { LinkName = "OUTSIDE" }, Entry("evil/out/pwned", "pwned")] },
        { "a symlink climbing out", [new GnuTarEntry(TarEntryType.Directory, "evil/"), new GnuTarEntry(TarEntryType.SymbolicLink, "evil/up") { LinkName = "../../outside" }] },
        { "an entry above the copy", [Entry("evil/../pwned", "pwned")] },
        { "an absolute entry", [Entry("/pwned", "pwned")] },
        { "an entry beside the copy", [Entry("other/pwned", "pwned")] },
        { "a hard link to a file outside", [new GnuTarEntry(TarEntryType.HardLink, "evil/shadow") { LinkName = "/etc/shadow" }] },
        { "a device file of the host's disk", [new GnuTarEntry(TarEntryType.BlockDevice, "evil/disk") { DeviceMajor = 7, DeviceMinor = 0 }] },
        { "a FIFO", [new GnuTarEntry(TarEntryType.Fifo, "evil/fifo")] },
    };

    [Theory]
    [MemberData(nameof(CraftedArchives))]
    public async Task A_crafted_archive_is_refused_and_writes_nothing_outside_the_target(string what, TarEntry[] entries)
    {
        var outside = Directory.CreateDirectory(Path.Combine(_host, "outside")).FullName;
        var target = Directory.CreateDirectory(Path.Combine(_host, "target")).FullName;
        foreach (var entry in entries.Where(e => e.LinkName == "OUTSIDE"))
            entry.LinkName = outside;
        await SendsAsync(entries);
        var e = await Assert.ThrowsAsync<IOException>(() => _machine.CopyFromAsync("/srv/evil", target));
        Assert.Contains("Could not copy", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
        Assert.Equal(["outside", "target"], Directory.EnumerateFileSystemEntries(_host).Select(Path.GetFileName).Order());
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(target, "*", SearchOption.AllDirectories), p => p.EndsWith("pwned") || p.EndsWith("disk") || p.EndsWith("fifo"));
        Assert.False(File.Exists("/pwned"), what);
    }

    [Fact]
    public async Task Reads_and_writes_resolve_the_guests_links_inside_the_machine()
    {
        var marker = $"/etc/nspawn-host-marker-{Guid.NewGuid():N}";
        await _machine.ExecCheckedAsync("sh", "-c", $"""
            ln -s /etc/hostname /srv/absolute
            ln -s ../../../../../../../../etc/hostname /srv/climbing
            ln -s {marker} /srv/dangling
            mkfifo /srv/fifo
            """);
        var guestHostname = (await _machine.ExecCheckedAsync("hostname")).StandardOutput;
        Assert.NotEqual(File.ReadAllText("/etc/hostname"), guestHostname);
        Assert.Equal(guestHostname, await _machine.ReadAllTextAsync("/srv/absolute"));
        Assert.Equal(guestHostname, await _machine.ReadAllTextAsync("/srv/climbing"));

        await _machine.WriteAllTextAsync("/srv/dangling", "inside\n");
        Assert.False(File.Exists(marker), "a write followed a guest's symlink onto the host");
        Assert.Equal("inside\n", (await _machine.ExecCheckedAsync("cat", marker)).StandardOutput);

        // Not opened at all: a FIFO would hang the read, a device would be read or written.
        await Assert.ThrowsAsync<IOException>(() => _machine.ReadFileAsync("/srv/fifo"));
        // The guest's root cannot make a device node (a user namespace): nspawn's own /dev/null stands for one.
        await Assert.ThrowsAsync<IOException>(() => _machine.WriteAllTextAsync("/dev/null", "x"));
        Assert.Equal("character special file\n", (await _machine.ExecCheckedAsync("stat", "-c", "%F", "/dev/null")).StandardOutput);
    }
}
