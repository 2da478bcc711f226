using System.Xml.Linq;

namespace Nspawn.Build.Tests;

[Trait("Category", "Unit")]
public class ValidateTests
{
    [Theory]
    [InlineData("bookworm")]
    [InlineData("trixie-2")]
    [InlineData("a")]
    public void Plain_names_pass(string name) => Assert.Equal(name, Validate.ImageName(name, "NspawnImage"));

    [Theory]
    [InlineData("")]
    [InlineData("../etc")]
    [InlineData("Bookworm")]
    [InlineData("-rf")]
    [InlineData("a.b")]
    [InlineData("a b")]
    [InlineData("this-name-is-far-too-long-for-a-machine")]
    public void Other_names_fail(string name)
    {
        Assert.Equal(ErrorCodes.BadImageName, Assert.Throws<NspawnException>(() => Validate.ImageName(name, "NspawnImage")).Code);
        Assert.Equal(ErrorCodes.BadMachineName, Assert.Throws<NspawnException>(() => Validate.MachineName(name, "NspawnMachine")).Code);
    }

    [Theory]
    [InlineData("2G", 2L << 30)]
    [InlineData("1536M", 1536L << 20)]
    [InlineData("2GiB", 2L << 30)]
    [InlineData("1.5g", 3L << 29)]
    [InlineData("536870912", 512L << 20)]
    public void Sizes_parse(string text, long bytes) => Assert.Equal(bytes, Validate.Size(text, "NspawnBtrfsImageSize"));

    [Theory]
    [InlineData("lots")]
    [InlineData("10M")]
    [InlineData("-2G")]
    [InlineData("")]
    public void Bad_sizes_fail(string text) =>
        Assert.Equal(ErrorCodes.BadSize, Assert.Throws<NspawnException>(() => Validate.Size(text, "NspawnBtrfsImageSize")).Code);

    [Theory]
    [InlineData("60", 60)]
    [InlineData("2.5", 2.5)]
    [InlineData("30s", 30)]
    [InlineData("00:01:30", 90)]
    public void Timeouts_parse(string text, double seconds) => Assert.Equal(TimeSpan.FromSeconds(seconds), Validate.Timeout(text, "NspawnBootTimeout"));

    [Theory]
    [InlineData("soon")]
    [InlineData("0")]
    [InlineData("-5")]
    public void Bad_timeouts_fail(string text) =>
        Assert.Equal(ErrorCodes.BadTimeout, Assert.Throws<NspawnException>(() => Validate.Timeout(text, "NspawnBootTimeout")).Code);

    [Theory]
    [InlineData("http://deb.debian.org/debian")]
    [InlineData("https://mirror.example/ubuntu/")]
    public void Http_mirrors_pass(string url) => Assert.Equal(url, Validate.Mirror(url, "NspawnMirror"));

    [Theory]
    [InlineData("ftp://deb.debian.org/debian")]
    [InlineData("deb.debian.org/debian")]
    [InlineData("file:///srv/mirror")]
    public void Other_mirrors_fail(string url) =>
        Assert.Equal(ErrorCodes.BadMirror, Assert.Throws<NspawnException>(() => Validate.Mirror(url, "NspawnMirror")).Code);

    [Fact]
    public void Package_lists_are_sorted_and_checked()
    {
        Assert.Equal(["dbus", "libc6:amd64", "systemd"], Validate.Packages(" systemd, dbus;libc6:amd64,dbus ", "NspawnInclude"));
        Assert.Equal(ErrorCodes.BadPackageList, Assert.Throws<NspawnException>(() => Validate.Packages("dbus,$(rm)", "NspawnInclude")).Code);
    }
}

[Trait("Category", "Unit")]
public class ImageSpecTests
{
    private static ImageSpec Spec(string include = "dbus,systemd", string suite = "", string variant = "minbase", string mirror = "http://deb.debian.org/debian") =>
        TestImages.Spec("bookworm", suite, mirror, variant, include);

    [Fact]
    public void A_corrupt_or_missing_stamp_means_out_of_date()
    {
        var dir = Directory.CreateTempSubdirectory("nspawn-stamp-").FullName;
        try
        {
            var builder = new ImageBuilder(dir);
            Assert.False(builder.IsUpToDate(Spec()));
            Directory.CreateDirectory(Path.Combine(dir, "bookworm/etc"));
            File.WriteAllBytes(Path.Combine(dir, "bookworm", ImageBuilder.StampPath), [0xff, 0x00, 0xfe, 0x12]);
            Assert.False(builder.IsUpToDate(Spec()));
            File.WriteAllText(Path.Combine(dir, "bookworm", ImageBuilder.StampPath), Spec().Stamp);
            Assert.True(builder.IsUpToDate(Spec()));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Suite_defaults_to_the_image_name() => Assert.Equal("bookworm", Spec().Suite);

    [Fact]
    public void Debootstrap_gets_an_argument_list() =>
        Assert.Equal(["--variant=minbase", "--include=dbus,systemd", "bookworm", "/c/.#new", "http://deb.debian.org/debian"], Spec().DebootstrapArguments("/c/.#new"));

    [Fact]
    public void Stamp_changes_with_each_input_and_only_then()
    {
        var stamps = new[]
        {
            Spec().Stamp, Spec(include: "dbus,systemd,python3").Stamp, Spec(suite: "trixie").Stamp,
            Spec(variant: "buildd").Stamp, Spec(mirror: "http://other/debian").Stamp,
        };
        stamps = [.. stamps, (Spec() with { Slim = true }).Stamp];
        Assert.Equal(stamps.Length, stamps.Distinct().Count());
        Assert.Equal(Spec().Stamp, Spec(include: "systemd, dbus").Stamp);
    }
}

[Trait("Category", "Unit")]
public class ParsingTests
{
    [Fact]
    public void Versions_come_from_version_texts()
    {
        Assert.Equal("252.0.0", ToolLocator.ParseVersion("systemd 252 (252.39-1~deb12u2)\n+PAM +AUDIT")!.ToNormalizedString());
        Assert.Equal("1.0.128", ToolLocator.ParseVersion("debootstrap 1.0.128+nmu2+deb12u2")!.ToNormalizedString());
        Assert.Null(ToolLocator.ParseVersion("no version here"));
    }

    [Fact]
    public void Mountinfo_gives_the_file_system_of_a_path()
    {
        var mounts = MountTable.Parse(
            "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n" +
            "40 22 7:1 / /work/my\\040repo/test_chroots rw,relatime shared:5 - btrfs /dev/loop1 rw,space_cache=v2\n" +
            "41 22 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
        Assert.Equal("btrfs", MountTable.Find(mounts, "/work/my repo/test_chroots/bookworm")!.FsType);
        Assert.Equal("ext4", MountTable.Find(mounts, "/work/my repo/test_chroots2")!.FsType);
        Assert.Equal("/dev/loop1", MountTable.Find(mounts, "/work/my repo/test_chroots")!.Source);
    }

    [Fact]
    public void Own_cgroups_are_found_in_every_hierarchy()
    {
        var mounts = MountTable.Parse(
            "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n" +
            "31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n" +
            "32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n" +
            "33 25 0:29 /outer /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
        var own = CgroupScope.OwnCgroups("0::/\n9:name=systemd:/user.slice\n2:cpu,cpuacct:/\n4:memory:/outer/job1\n", mounts);
        Assert.Equal(["/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd/user.slice", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory/job1"], own);
    }

    [Fact]
    public void Start_time_is_field_22_even_with_spaces_in_the_name()
    {
        var stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        Assert.Equal(987654UL, ProcessInfo.ParseStartTime(stat));
        Assert.Null(ProcessInfo.ParseStartTime(stat.Replace(") S ", ") Z ")));
        Assert.NotNull(ProcessInfo.StartTime(Environment.ProcessId));
    }

    [Fact]
    public void Notify_messages_split_into_pairs() =>
        Assert.Equal([("STATUS", "Container running."), ("X_NSPAWN_LEADER_PID", "8731")],
            NotifyListener.Parse("STATUS=Container running.\nX_NSPAWN_LEADER_PID=8731"));

    [Fact]
    public void The_snapshot_is_named_by_nspawns_lock()
    {
        Assert.Equal("/c/.#machine.bookworm27b84f9d", TempNames.SnapshotFromLock("/c/.#.#machine.bookworm27b84f9d.lck"));
        Assert.Null(TempNames.SnapshotFromLock("/c/bookworm"));
        Assert.Null(TempNames.SnapshotFromLock(null));
    }

    [Fact]
    public void Debootstrap_progress_moves_forward_with_counts()
    {
        var p = new DebootstrapProgress(TimeSpan.FromSeconds(5));
        var t = DateTime.UnixEpoch;
        Assert.Equal("reading the archive index", p.OnLine("I: Retrieving InRelease ", t));
        Assert.Null(p.OnLine("I: Validating Packages ", t));
        Assert.Equal("resolving dependencies", p.OnLine("I: Resolving dependencies of required packages...", t));
        Assert.Equal("downloading packages (1)", p.OnLine("I: Retrieving libc6 2.36-9", t));
        Assert.Null(p.OnLine("I: Validating libc6 2.36-9", t));
        Assert.Null(p.OnLine("I: Retrieving dpkg 1.21", t));
        Assert.Equal("downloading packages (3)", p.OnLine("I: Retrieving bash 5.2", t.AddSeconds(6)));
        Assert.Equal("extracting packages (1/3)", p.OnLine("I: Extracting libc6...", t.AddSeconds(7)));
        Assert.Equal("unpacking packages (0/3)", p.OnLine("I: Installing core packages...", t.AddSeconds(8)));
        Assert.Equal("configuring packages (1/3)", p.OnLine("I: Configuring libc6...", t.AddSeconds(9)));
        Assert.Null(p.OnLine("I: Unpacking dpkg...", t.AddSeconds(10)));
        Assert.Equal("configuring packages (2/3)", p.OnLine("I: Configuring dpkg...", t.AddSeconds(20)));
        Assert.Null(p.OnLine("W: something", t.AddSeconds(30)));
        Assert.Equal("done", p.OnLine("I: Base system installed successfully.", t.AddSeconds(31)));
    }

    [Fact]
    public void A_silent_debootstrap_still_reports_at_least_every_10_seconds()
    {
        var p = new DebootstrapProgress(TimeSpan.FromSeconds(5));
        var t = DateTime.UnixEpoch;
        Assert.Null(p.Heartbeat(t));
        Assert.Equal("reading the archive index", p.OnLine("I: Retrieving InRelease ", t.AddSeconds(1)));
        // A tick every second: nothing until the silence reaches Quiet, then a report, and again Quiet later.
        var reports = Enumerable.Range(2, 40).Select(s => (At: s, Report: p.Heartbeat(t.AddSeconds(s)))).Where(r => r.Report is not null).ToList();
        Assert.Equal("still reading the archive index", reports[0].Report);
        Assert.True(DebootstrapProgress.Quiet + TimeSpan.FromSeconds(1) <= TimeSpan.FromSeconds(10));
        Assert.Equal([9, 17, 25, 33, 41], reports.Select(r => r.At));
        // A line resets the silence.
        Assert.Equal("resolving dependencies", p.OnLine("I: Resolving dependencies of required packages...", t.AddSeconds(45)));
        Assert.Null(p.Heartbeat(t.AddSeconds(52)));
        Assert.Equal("still resolving dependencies", p.Heartbeat(t.AddSeconds(53)));
    }
}

[Trait("Category", "Unit")]
public class CommandLineTests
{
    private static LaunchOptions Options(bool systemdRun) =>
        new("web", "/c/bookworm") { MachineName = "nspawn-web-12345678", UseSystemdRun = systemdRun };

    [Fact]
    public void Direct_nspawn_does_not_register()
    {
        var args = Options(false).NspawnArguments();
        Assert.Equal(["--quiet", "--ephemeral", "--boot", "--notify-ready=yes", "--console=read-only", "--keep-unit",
            "--directory=/c/bookworm", "--machine=nspawn-web-12345678", "--register=no"], args);
    }

    [Fact]
    public void Overlay_machines_boot_a_read_only_image_under_a_tmpfs()
    {
        var args = (Options(false) with { Mode = EphemeralMode.Overlay, ExtraArguments = ["--bind-ro=/srv"] }).NspawnArguments();
        Assert.Contains("--volatile=overlay", args);
        Assert.Contains("--read-only", args);
        Assert.DoesNotContain("--ephemeral", args);
        Assert.Equal("--bind-ro=/srv", args[^1]);
        Assert.Equal(ErrorCodes.BadOption, Assert.Throws<NspawnException>(() => (Options(false) with { ExtraArguments = ["rm"] }).NspawnArguments()).Code);
    }

    [Fact]
    public void Auto_mode_picks_snapshot_on_btrfs_or_with_a_loop_file_and_overlay_elsewhere()
    {
        var dir = Directory.CreateTempSubdirectory("nspawn-mode-").FullName;
        try
        {
            var loop = Path.Combine(dir, "btrfs.img");
            Assert.Equal(EphemeralMode.Overlay, EphemeralModeResolver.Resolve("auto", dir, loop));
            Assert.Equal(EphemeralMode.Snapshot, EphemeralModeResolver.Resolve("snapshot", dir, loop));
            File.WriteAllText(loop, "");
            Assert.Equal(EphemeralMode.Snapshot, EphemeralModeResolver.Resolve("auto", dir, loop));
            Assert.Equal(EphemeralMode.Overlay, EphemeralModeResolver.Resolve("Overlay", dir, loop));
            Assert.Equal(ErrorCodes.BadOption, Assert.Throws<NspawnException>(() => EphemeralModeResolver.Resolve("copy", dir, loop)).Code);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Systemd_run_carries_the_seeds_unit_properties()
    {
        var args = Options(true).SystemdRunArguments("/usr/bin/systemd-nspawn");
        Assert.Equal("--unit=nspawn-web-12345678", args[0]);
        foreach (var p in new[] { "KillMode=mixed", "Type=notify", "Delegate=yes", "Slice=machine.slice", "TimeoutStartSec=60s", "TimeoutStopSec=15s" })
            Assert.Contains("--property=" + p, args);
        var nspawn = args.SkipWhile(a => a != "--").Skip(1).ToList();
        Assert.Equal("/usr/bin/systemd-nspawn", nspawn[0]);
        Assert.DoesNotContain("--register=no", nspawn);
        Assert.Contains("--keep-unit", nspawn);
    }

    [Fact]
    public void Machine_names_are_unique_and_plain()
    {
        var a = TempNames.Machine("web");
        Assert.NotEqual(a, TempNames.Machine("web"));
        Assert.Matches("^nspawn-web-[0-9a-f]{8}$", a);
    }

    [Fact]
    public void Run_settings_keep_the_suites_own_and_add_ours()
    {
        var suite = XDocument.Parse("<RunSettings><RunConfiguration><MaxCpuCount>1</MaxCpuCount><EnvironmentVariables><KEEP>1</KEEP><NSPAWN_MACHINE>old</NSPAWN_MACHINE></EnvironmentVariables></RunConfiguration></RunSettings>");
        var merged = RunSettings.Merge(suite, new Dictionary<string, string> { ["NSPAWN_MACHINE"] = "m1", ["NSPAWN_LEADER_PID"] = "42" });
        var vars = merged.Root!.Element("RunConfiguration")!.Element("EnvironmentVariables")!;
        Assert.Equal("1", merged.Root.Element("RunConfiguration")!.Element("MaxCpuCount")!.Value);
        Assert.Equal(["KEEP=1", "NSPAWN_MACHINE=m1", "NSPAWN_LEADER_PID=42"], vars.Elements().Select(e => $"{e.Name}={e.Value}"));
        Assert.Equal("m1", RunSettings.Merge(null, new Dictionary<string, string> { ["NSPAWN_MACHINE"] = "m1" })
            .Root!.Element("RunConfiguration")!.Element("EnvironmentVariables")!.Element("NSPAWN_MACHINE")!.Value);
    }

    [Fact]
    public void Machines_file_round_trips()
    {
        var m = new Machine("web", "nspawn-web-1", "bookworm", "/c/bookworm", 10, 20, 30, 40, "/c/.#machine.x", null, ["/sys/fs/cgroup/x"]);
        Assert.Equal(m.Name, MachinesFile.Deserialize(MachinesFile.Serialize([m]))[0].Name);
        Assert.Equivalent(m, MachinesFile.DeserializeOne(MachinesFile.SerializeOne(m)));
        Assert.Contains("\"leaderPid\": 10", MachinesFile.Serialize([m]));
    }
}

[Trait("Category", "Unit")]
public class LaunchFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-launch-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_machines_round_trip_and_each_read_gives_new_machine_names()
    {
        var path = Path.Combine(_dir, LaunchFile.NameFor("App.Tests"));
        Assert.Null(LaunchFile.Read(path));
        var written = new LaunchOptions("web", "/c/bookworm")
        {
            Mode = EphemeralMode.Overlay, UseSystemdRun = true, BootTimeout = TimeSpan.FromSeconds(7), StopTimeout = TimeSpan.FromSeconds(3.5),
            ExtraArguments = ["--bind-ro=/srv"], Network = NetworkMode.Private, Binds = [new BindMount("/home/u/project/bin", "/opt/app", ReadOnly: true)],
            ResultsDir = "/home/u/project/TestResults", KeepLogs = KeepLogs.Always, KeepOnFailure = true,
        };
        var network = new NetworkSettings(NetworkMode.Private, Ipv4Range.TryParse("10.213.0.0/16")!.Value, Outbound: true);
        LaunchFile.Write(path, new LaunchPlan([written, new LaunchOptions("db", "/c/trixie")], network, ["/home/u/project"]) { PoolSize = 2, ProjectFile = "/home/u/project/App.Tests.csproj" });
        var plan = LaunchFile.Read(path)!;
        var (read, readNetwork, folders) = (plan.Machines, plan.Network, plan.ReturnOwnership);
        Assert.Equal(["/home/u/project"], folders);
        Assert.Equal((2, "/home/u/project/App.Tests.csproj"), (plan.PoolSize, plan.ProjectFile));
        Assert.Equal(network, readNetwork);
        Assert.Equal(["web", "db"], read.Select(o => o.LogicalName));
        Assert.Equal(written with { MachineName = read[0].MachineName }, read[0] with { ExtraArguments = written.ExtraArguments, Binds = written.Binds });
        Assert.Equal(["--bind-ro=/srv"], read[0].ExtraArguments);
        Assert.Equal(written.Binds, read[0].Binds);
        Assert.Equal(NetworkMode.Host, read[1].Network);
        Assert.NotEqual(read[0].MachineName, LaunchFile.Read(path)!.Machines[0].MachineName);
        Assert.Equal(["App.Tests.nspawn.json"], Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public void A_link_planted_under_its_name_is_replaced_on_write_and_refused_on_read()
    {
        var path = Path.Combine(_dir, "App.nspawn.json");
        var victim = Path.Combine(_dir, "victim");
        File.WriteAllText(victim, "keep");
        File.CreateSymbolicLink(path, victim);
        Assert.Throws<IOException>(() => LaunchFile.Read(path));
        LaunchFile.Write(path, new LaunchPlan([new LaunchOptions("default", "/c/bookworm")], null, []));
        Assert.Equal("keep", File.ReadAllText(victim));
        Assert.Null(new FileInfo(path).LinkTarget);
        Assert.Single(LaunchFile.Read(path)!.Machines);
    }
}
