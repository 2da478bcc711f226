namespace Nspawn.Build.Tests;

/// <summary>
/// Bad input gets its own NSPAWN error before anything is created. These run ContainerTest on a small
/// project that imports the packed package's build files directly, so that each case takes a second.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class ErrorTests(PackageFixture package) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-errors-").FullName;
    private string ChrootsDir => Path.Combine(_dir, "test_chroots");

    public void Dispose()
    {
        // Our tmpfs mounts, and a loop mount that a wrongly accepted property would have made: never leave one behind.
        foreach (var mount in _mounts.Concat(MountTable.Read().Select(m => m.MountPoint).Where(m => MountTable.IsUnder(m, _dir))).Distinct().Reverse())
            Shell.RunAsync("umount", [mount]).GetAwaiter().GetResult();
        Directory.Delete(_dir, recursive: true);
    }

    private Task<RunResult> ContainerTestAsync(IEnumerable<string> args, string items = "", Dictionary<string, string?>? env = null, string[]? prefix = null) =>
        new ConsumerProject(package, _dir, ChrootsDir, items).RunAsync(["-t:ContainerTest", .. args], env, prefix);

    private static void AssertError(RunResult run, string code, string hint)
    {
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains($"error {code}: ", run.Output);
        Assert.Contains(hint, run.Output);
    }

    private void AssertNothingCreated()
    {
        Assert.False(Directory.Exists(ChrootsDir), "the chroots folder was created");
        Leaks.AssertNone();
    }

    [Theory]
    [InlineData("NspawnImage=../etc", ErrorCodes.BadImageName, "is not a plain name")]
    [InlineData("NspawnSuite=Bookworm", ErrorCodes.BadImageName, "NspawnSuite 'Bookworm'")]
    [InlineData("NspawnMirror=ftp://deb.debian.org/debian", ErrorCodes.BadMirror, "http or https")]
    [InlineData("NspawnBtrfsImageSize=lots", ErrorCodes.BadSize, "such as '2G'")]
    [InlineData("NspawnBootTimeout=soon", ErrorCodes.BadTimeout, "NspawnBootTimeout 'soon'")]
    [InlineData("NspawnStopTimeout=0", ErrorCodes.BadTimeout, "NspawnStopTimeout '0'")]
    [InlineData("NspawnInclude=Systemd", ErrorCodes.BadPackageList, "'Systemd'")]
    [InlineData("NspawnVariant=tiny", ErrorCodes.BadOption, "minbase")]
    [InlineData("NspawnLauncher=docker", ErrorCodes.BadOption, "systemd-run")]
    [InlineData("NspawnEphemeralMode=copy", ErrorCodes.BadOption, "snapshot, overlay, auto")]
    [InlineData("NspawnSetupScript=/nonexistent/setup.sh", ErrorCodes.BadPath, "is not an existing file")]
    [InlineData("NspawnImageMaxAge=soon", ErrorCodes.BadTimeout, "NspawnImageMaxAge 'soon'")]
    [InlineData("NspawnArch=amd64 i386", ErrorCodes.BadOption, "more than one")]
    [InlineData("NspawnExclude=Bad!", ErrorCodes.BadPackageList, "'Bad!'")]
    [InlineData("NspawnSlimBoot=maybe", ErrorCodes.BadOption, "NspawnSlimBoot 'maybe'")]
    [InlineData("NspawnOnTest=maybe", ErrorCodes.BadOption, "NspawnOnTest 'maybe'")]
    [InlineData("NspawnOnVSTest=maybe", ErrorCodes.BadOption, "NspawnOnTest 'maybe' is not a boolean (true or false); NspawnOnVSTest is its older name")]
    [InlineData("NspawnKeepLogs=sometimes", ErrorCodes.BadOption, "NspawnKeepLogs 'sometimes' is not one of: failure, always, never")]
    [InlineData("NspawnKeepOnFailure=maybe", ErrorCodes.BadOption, "NspawnKeepOnFailure 'maybe'")]
    [InlineData("VSTestSetting=/nonexistent/x.runsettings", ErrorCodes.BadPath, "does not exist")]
    [InlineData("NspawnNetwork=bridge", ErrorCodes.BadOption, "NspawnNetwork 'bridge' is not one of: host, private, none")]
    [InlineData("NspawnNetworkRange=8.8.8.0/24", ErrorCodes.BadNetworkRange, "is not a private IPv4 range")]
    [InlineData("NspawnNetworkOutbound=yes", ErrorCodes.BadOption, "NspawnNetworkOutbound 'yes'")]
    [InlineData("NspawnNetworkOutbound=true", ErrorCodes.BadOption, "for NspawnNetwork=private only")]
    [InlineData("NspawnPoolSize=two", ErrorCodes.BadPoolSize, "NspawnPoolSize 'two' is not a number of machines from 0 to 16")]
    [InlineData("NspawnPoolSize=-1", ErrorCodes.BadPoolSize, "NspawnPoolSize '-1'")]
    [InlineData("NspawnPoolSize=17", ErrorCodes.BadPoolSize, "NspawnPoolSize '17'")]
    public async Task A_bad_property_is_rejected_before_anything_is_created(string property, string code, string hint)
    {
        AssertError(await ContainerTestAsync([$"-p:{property}"]), code, hint);
        AssertNothingCreated();
    }

    [Fact]
    public async Task A_loop_file_hidden_by_the_mount_is_rejected()
    {
        AssertError(await ContainerTestAsync([$"-p:NspawnBtrfsImageFile={ChrootsDir}/sub/btrfs.img"]), ErrorCodes.BadPath, "would hide");
        AssertNothingCreated();
    }

    [Theory]
    [InlineData("""<NspawnMachine Include="Web_1" />""", "NspawnMachine 'Web_1'")]
    [InlineData("""<NspawnMachine Include="web" /><NspawnMachine Include="web" />""", "more than once")]
    public async Task A_bad_machine_is_rejected_before_anything_is_created(string items, string hint)
    {
        AssertError(await ContainerTestAsync([], items), ErrorCodes.BadMachineName, hint);
        AssertNothingCreated();
    }

    [Fact]
    public async Task Image_definitions_that_derive_from_each_other_are_rejected()
    {
        AssertError(await ContainerTestAsync([], """
            <NspawnImageDefinition Include="a" BaseImage="b" /><NspawnImageDefinition Include="b" BaseImage="a" />
            <NspawnMachine Include="web" Image="a" />
            """), ErrorCodes.BadOption, "is its own base");
        AssertNothingCreated();
    }

    [Fact]
    public async Task An_image_definitions_metadata_is_checked_like_the_properties()
    {
        AssertError(await ContainerTestAsync([], """
            <NspawnImageDefinition Include="trixie" Packages="dbus,Bad!" /><NspawnMachine Include="web" Image="trixie" />
            """), ErrorCodes.BadPackageList, "'Bad!'");
        AssertError(await ContainerTestAsync([], """
            <NspawnImageDefinition Include="trixie" Mirror="ftp://mirror/debian" /><NspawnMachine Include="web" Image="trixie" />
            """), ErrorCodes.BadMirror, "ftp://mirror/debian");
        AssertNothingCreated();
    }

    [Fact]
    public async Task An_image_file_with_a_relative_destination_is_rejected()
    {
        AssertError(await ContainerTestAsync([], """<NspawnImageFiles Include="consumer.proj" Destination="etc/app.conf" />"""), ErrorCodes.BadPath, "Destination of NspawnImageFiles");
        AssertNothingCreated();
    }

    [Fact]
    public async Task A_machine_with_a_bad_image_is_rejected()
    {
        AssertError(await ContainerTestAsync([], """<NspawnMachine Include="web" Image="bookworm/../x" />"""), ErrorCodes.BadImageName, "Image of NspawnMachine 'web'");
        AssertNothingCreated();
    }

    [Theory]
    [InlineData("""<NspawnMachine Include="web" /><NspawnBind Include="/srv" Machines="db" />""", ErrorCodes.BadMachineName, "name 'db', which is not a declared machine")]
    [InlineData("""<NspawnBind Include="/srv" Destination="srv" />""", ErrorCodes.BadPath, "The Destination of NspawnBind '/srv' 'srv'")]
    [InlineData("""<NspawnBind Include="/srv" ReadOnly="no" />""", ErrorCodes.BadOption, "The ReadOnly of NspawnBind '/srv' 'no'")]
    public async Task A_bad_bind_is_rejected_before_anything_is_created(string items, string code, string hint)
    {
        AssertError(await ContainerTestAsync([], items), code, hint);
        AssertNothingCreated();
    }

    [Fact]
    public async Task A_missing_bind_folder_is_reported_before_a_machine_or_network_is_made()
    {
        // The real chroots folder: the image is there, and the check comes after Build, when the machines would start.
        await package.FirstRunAsync();
        var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir, """<NspawnBind Include="/nonexistent/out" Destination="/opt/app" />""")
            .RunAsync(["-t:ContainerTest", "-p:NspawnNetwork=private"]);
        AssertError(run, ErrorCodes.BadPath, "'/nonexistent/out' does not exist");
        Assert.DoesNotContain("Made the private network", run.Output);
        Assert.DoesNotContain("Started '", run.Output);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_network_range_the_host_uses_is_rejected()
    {
        // An interface of the test's own (an empty bridge: no traffic), with an address in the range.
        var name = "nspt" + Guid.NewGuid().ToString("N")[..8];
        var add = await Shell.RunAsync("ip", ["link", "add", name, "type", "bridge"]);
        Assert.True(add.ExitCode == 0, add.ToString());
        try
        {
            var address = await Shell.RunAsync("ip", ["address", "add", "10.214.9.1/24", "dev", name]);
            Assert.True(address.ExitCode == 0, address.ToString());
            var run = await ContainerTestAsync(["-p:NspawnNetwork=private", "-p:NspawnNetworkRange=10.214.9.0/24"]);
            AssertError(run, ErrorCodes.BadNetworkRange, "NspawnNetworkRange '10.214.9.0/24' is in use on the host: it overlaps 10.214.9.");
            Assert.Contains(name, run.Output);
            AssertNothingCreated();
        }
        finally
        {
            await Shell.RunAsync("ip", ["link", "delete", name]);
        }
    }

    [Fact]
    public async Task Outbound_without_nftables_names_the_package_to_install()
    {
        // nft hidden in a mount namespace of the build's own: an empty, non-executable file over it.
        var nft = ToolLocator.Find("nft");
        Assert.True(nft is not null, "nftables is not installed (tests/prereqs.sh installs it)");
        var empty = Path.Combine(_dir, "no-nft");
        File.WriteAllText(empty, "");
        var run = await ContainerTestAsync(["-p:NspawnNetwork=private", "-p:NspawnNetworkOutbound=true"],
            prefix: ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "mount --bind \"$0\" \"$1\" && shift && exec \"$@\"", empty, nft]);
        AssertError(run, ErrorCodes.ToolMissing, "sudo apt-get install nftables");
        AssertNothingCreated();
    }

    /// <summary>A tmpfs of its own for the chroots folder's parent, with the given mount options; unmounted after.</summary>
    private async Task<string> TmpfsAsync(string options)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, "fs")).FullName;
        await Shell.RunAsync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]);
        _mounts.Add(dir);
        return dir;
    }

    private readonly List<string> _mounts = [];

    [Fact]
    public async Task A_read_only_chroots_folder_is_rejected()
    {
        var fs = await TmpfsAsync("ro,size=1M");
        var run = await new ConsumerProject(package, _dir, Path.Combine(fs, "test_chroots")).RunAsync(["-t:ContainerTest"]);
        AssertError(run, ErrorCodes.ReadOnly, "read-only file system");
        Assert.Empty(Directory.GetFileSystemEntries(fs));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_chroots_folder_without_room_for_the_loop_file_is_rejected()
    {
        var fs = await TmpfsAsync("size=64M");
        var run = await new ConsumerProject(package, _dir, Path.Combine(fs, "test_chroots")).RunAsync(["-t:ContainerTest"]);
        AssertError(run, ErrorCodes.NoSpace, "MiB are free");
        Assert.Empty(Directory.GetFileSystemEntries(fs));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task A_loop_file_that_is_not_btrfs_is_left_alone()
    {
        Directory.CreateDirectory(ChrootsDir);
        var file = Path.Combine(ChrootsDir, "btrfs.img");
        await using (var f = File.Create(file))
            f.SetLength(300 << 20);
        var run = await ContainerTestAsync([]);
        AssertError(run, ErrorCodes.NotBtrfs, "is not a btrfs file system");
        Assert.Equal(300L << 20, new FileInfo(file).Length);
        Assert.Single(Directory.GetFileSystemEntries(ChrootsDir));
        Assert.False(BtrfsStore.IsBtrfs(ChrootsDir));
        Leaks.AssertNone();
    }

    [Fact]
    public async Task An_image_folder_not_made_by_us_is_left_alone()
    {
        await package.FirstRunAsync();
        // In the real (btrfs) chroots folder: a folder named like the image, without our stamp.
        var mine = Path.Combine(Repo.ChrootsDir, "users-own");
        Directory.CreateDirectory(mine);
        File.WriteAllText(Path.Combine(mine, "precious.txt"), "keep me");
        try
        {
            var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir).RunAsync(["-t:ContainerTest", "-p:NspawnImage=users-own", "-p:NspawnSuite=bookworm"]);
            AssertError(run, ErrorCodes.NotOurImage, "was not made by Nspawn.Build");
            Assert.Equal("keep me", File.ReadAllText(Path.Combine(mine, "precious.txt")));
            Leaks.AssertNone();
        }
        finally
        {
            Directory.Delete(mine, recursive: true);
        }
    }

    [Fact]
    public async Task An_image_that_is_a_plain_folder_is_left_alone()
    {
        await package.FirstRunAsync();
        var plain = Path.Combine(Repo.ChrootsDir, "plain-copy");
        Directory.CreateDirectory(Path.Combine(plain, "etc"));
        File.Copy(Path.Combine(Repo.ImageDir, ImageBuilder.StampPath), Path.Combine(plain, ImageBuilder.StampPath));
        try
        {
            var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir).RunAsync(["-t:ContainerTest", "-p:NspawnImage=plain-copy", "-p:NspawnSuite=bookworm"]);
            AssertError(run, ErrorCodes.NotOurImage, "not a btrfs subvolume");
            Assert.True(File.Exists(Path.Combine(plain, ImageBuilder.StampPath)));
            Leaks.AssertNone();
        }
        finally
        {
            Directory.Delete(plain, recursive: true);
        }
    }

    [Fact]
    public async Task A_missing_tool_names_the_package_to_install()
    {
        // An empty PATH: btrfs (in /usr/bin) is missing; the sbin folders are still searched.
        var run = await ContainerTestAsync([], env: new() { ["PATH"] = "/nonexistent" });
        AssertError(run, ErrorCodes.ToolMissing, "sudo apt-get install btrfs-progs");
        AssertNothingCreated();
    }

    [Fact]
    public async Task A_tool_older_than_supported_is_rejected()
    {
        var bin = Directory.CreateDirectory(Path.Combine(_dir, "old-bin")).FullName;
        var fake = Path.Combine(bin, "systemd-nspawn");
        File.WriteAllText(fake, "#!/bin/sh\necho 'systemd 232 (232-25+deb9u1)'\n");
        File.SetUnixFileMode(fake, (UnixFileMode)0b111_101_101);
        var run = await ContainerTestAsync([], env: new() { ["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH") });
        AssertError(run, ErrorCodes.ToolTooOld, "version 232.0.0, older than 247");
        AssertNothingCreated();
    }

    [Fact]
    public async Task Not_being_root_is_reported()
    {
        // The same build as an unprivileged user (nobody): every folder it reads must be readable by it.
        foreach (var dir in new[] { _dir, package.PackageDir })
            foreach (var d in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).Prepend(dir))
                File.SetUnixFileMode(d, (UnixFileMode)0b111_101_101);
        var home = Directory.CreateDirectory(Path.Combine(_dir, "home")).FullName;
        File.SetUnixFileMode(home, (UnixFileMode)0b111_111_111);
        var run = await ContainerTestAsync([], env: new() { ["HOME"] = home, ["DOTNET_CLI_HOME"] = home },
            prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        AssertError(run, ErrorCodes.NotRoot, "sudo dotnet build -t:ContainerTest");
        AssertNothingCreated();
    }
}
