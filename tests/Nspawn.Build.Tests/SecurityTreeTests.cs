using System.Security;
using System.Security.Cryptography;

namespace Nspawn.Build.Tests;

/// <summary>
/// Safe as root, in the user's tree and in the images: each test does the bad thing for real (a link planted
/// where root writes, a hard link, a mount, a root-owned folder) and shows that nothing outside changed.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class SecurityTreeTests(PackageFixture package) : IAsyncLifetime
{
    private const uint Nobody = 65534;
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-sec-").FullName;
    private readonly List<string> _mounts = [];
    private readonly List<string> _images = [];

    public async Task InitializeAsync() => await package.RequireImageAsync();

    public async Task DisposeAsync()
    {
        foreach (var mount in _mounts)
            await Shell.RunAsync("umount", [mount]);
        foreach (var image in _images.Where(Directory.Exists))
            await Subvolumes.RemoveTreeAsync(Repo.ChrootsDir, image, CancellationToken.None);
        Directory.Delete(_dir, recursive: true);
    }

    private static uint Owner(string path) => FileStatus.Of(path)!.Uid;

    private static string Hash(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    private string Dir(string name, uint owner = 0)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;
        if (owner != 0)
            Shell.RunAsync("chown", [$"{owner}:{owner}", dir]).GetAwaiter().GetResult();
        return dir;
    }

    [Fact]
    public async Task Ownership_goes_back_only_for_what_root_made_in_the_users_folders()
    {
        var project = Dir("proj", Nobody);
        var outside = Dir("outside");
        var startup = Dir("startup");
        var chroots = Directory.CreateDirectory(Path.Combine(project, "ch[1]")).FullName;
        var mount = Directory.CreateDirectory(Path.Combine(project, "mnt")).FullName;
        await Shell.RunAsync("mount", ["-t", "tmpfs", "tmpfs", mount]);
        _mounts.Add(mount);
        string P(string path) => SecurityElement.Escape(path);
        // What root does during the build: files in the user's folders, links out of them, a file behind a mount,
        // in the chroots folder (whose name is a glob), and in the root-owned folder the build started from.
        var during = $"""
            <Touch Files="{P(outside)}/f;{P(outside)}/g;{P(chroots)}/img;{P(mount)}/x;{P(startup)}/new" AlwaysCreate="true" />
            <Exec Command="ln -s '{P(outside)}' '{P(project)}/link' &amp;&amp; ln '{P(outside)}/g' '{P(project)}/hard' &amp;&amp; mkdir '{P(project)}/out' &amp;&amp; touch '{P(project)}/out/file'" />
            """;
        var consumer = new ConsumerProject(package, project, chroots, vstest: during);
        var run = await Shell.RunAsync(consumer.Command(["-t:_NspawnResolve;VSTest"])[0], consumer.Command(["-t:_NspawnResolve;VSTest"]).Skip(1),
            new Dictionary<string, string?> { ["SUDO_UID"] = $"{Nobody}", ["SUDO_GID"] = $"{Nobody}" }, startup);
        Assert.True(run.ExitCode == 0, run.ToString());

        // Given back: what root made in the user's folder.
        Assert.Equal(Nobody, Owner(Path.Combine(project, "out")));
        Assert.Equal(Nobody, Owner(Path.Combine(project, "out/file")));
        Assert.Equal(Nobody, Owner(Path.Combine(project, "link")));
        // Not given: what a link or a hard link leads to, what is behind a mount or in the chroots folder, the folder the build started from.
        Assert.Equal(0u, Owner(outside));
        Assert.Equal(0u, Owner(Path.Combine(outside, "f")));
        Assert.Equal(0u, Owner(Path.Combine(outside, "g")));
        Assert.Equal(0u, Owner(Path.Combine(project, "hard")));
        Assert.Equal(0u, Owner(Path.Combine(chroots, "img")));
        Assert.Equal(0u, Owner(Path.Combine(mount, "x")));
        Assert.Equal(0u, Owner(startup));
        Assert.Equal(0u, Owner(Path.Combine(startup, "new")));
    }

    [Fact]
    public async Task Files_for_an_image_land_in_the_image_through_its_own_links()
    {
        // /etc/localtime and /var/run are absolute links in the image: on the host they lead to host files.
        var hostZone = "/usr/share/zoneinfo/Etc/UTC";
        var before = Hash(hostZone);
        var runName = $"nspawn-sec-{Guid.NewGuid():N}"[..20];
        var content = Path.Combine(_dir, "content");
        File.WriteAllText(content, "not a time zone\n");
        var name = $"files-{Guid.NewGuid():N}"[..14];
        _images.Add(Path.Combine(Repo.ChrootsDir, name));
        var items = $"""
            <NspawnImageDefinition Include="{name}" BaseImage="bookworm" />
            <NspawnImageFiles Include="{SecurityElement.Escape(content)}" Destination="/etc/localtime" />
            <NspawnImageFiles Include="{SecurityElement.Escape(content)}" Destination="/var/run/{runName}" />
            """;
        var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir, items).RunAsync(["-t:NspawnPrepareImages", $"-p:NspawnImage={name}"]);
        Assert.True(run.ExitCode == 0, run.ToString());

        Assert.Equal(before, Hash(hostZone));
        Assert.False(File.Exists("/run/" + runName), "a file was written to the host's /run");
        Assert.Equal("not a time zone\n", File.ReadAllText(Path.Combine(Repo.ChrootsDir, name, "usr/share/zoneinfo/Etc/UTC")));
        Assert.Equal("not a time zone\n", File.ReadAllText(Path.Combine(Repo.ChrootsDir, name, "run", runName)));
    }

    [Fact]
    public async Task A_derived_image_never_writes_through_its_bases_links()
    {
        // A base whose hostname and a slim unit are absolute links to host files.
        var victim = Path.Combine(_dir, "victim");
        File.WriteAllText(victim, "precious\n");
        await using var bad = await TempImage.SnapshotAsync("badbase");
        File.Delete(Path.Combine(bad.Dir, "etc/hostname"));
        File.CreateSymbolicLink(Path.Combine(bad.Dir, "etc/hostname"), victim);
        File.CreateSymbolicLink(Path.Combine(bad.Dir, "etc/systemd/system/apt-daily.timer"), victim);
        var name = $"derived-{Guid.NewGuid():N}"[..16];
        _images.Add(Path.Combine(Repo.ChrootsDir, name));
        var items = $"""
            <NspawnImageDefinition Include="{bad.Name}" Suite="bookworm" />
            <NspawnImageDefinition Include="{name}" BaseImage="{bad.Name}" Slim="true" />
            """;
        var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir, items).RunAsync(["-t:NspawnPrepareImages", $"-p:NspawnImage={name}"]);
        Assert.True(run.ExitCode == 0, run.ToString());

        Assert.Equal("precious\n", File.ReadAllText(victim));
        var hostname = Path.Combine(Repo.ChrootsDir, name, "etc/hostname");
        Assert.True(FileStatus.Of(hostname)!.IsRegularFile, "the image's hostname is still a link");
        Assert.Equal(name + "\n", File.ReadAllText(hostname));
        Assert.Equal("/dev/null", new FileInfo(Path.Combine(Repo.ChrootsDir, name, "etc/systemd/system/apt-daily.timer")).LinkTarget);
    }

    [Fact]
    public async Task The_machines_file_never_follows_a_link_planted_in_obj()
    {
        var victims = Dir("victims");
        Directory.CreateDirectory(Path.Combine(_dir, "obj/consumer"));
        File.CreateSymbolicLink(Path.Combine(_dir, "obj/consumer/nspawn"), victims);
        var runs = Directory.Exists(RunFiles.Root) ? Directory.GetDirectories(RunFiles.Root) : [];
        var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir).RunAsync(["-t:ContainerTest"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Empty(Directory.GetFileSystemEntries(victims));
        Assert.Equal(runs, Directory.Exists(RunFiles.Root) ? Directory.GetDirectories(RunFiles.Root) : []);
        Leaks.AssertNone();
    }

    [Fact]
    public async Task An_export_never_writes_through_a_link_in_the_cache_folder()
    {
        var cache = Dir("cache");
        var victim = Path.Combine(_dir, "victim");
        File.WriteAllText(victim, "precious\n");
        var export = new ImageCache(cache).FileOf(TestImages.Spec("bookworm", "", Settings.Mirror.DefaultText, Settings.Variant.DefaultText, Settings.Include.DefaultText));
        File.CreateSymbolicLink(export + ".partial", victim);
        var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir).RunAsync(["-t:NspawnPrepareImages", $"-p:NspawnImageCacheDir={cache}"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("exported to", run.Output);
        Assert.Equal("precious\n", File.ReadAllText(victim));
        Assert.True(FileStatus.Of(export)!.IsRegularFile);
    }

    [Fact]
    public async Task A_loop_file_that_is_a_link_is_never_mounted()
    {
        // The link leads to a file that looks like btrfs: it is the link that is refused.
        var victim = Path.Combine(_dir, "victim.img");
        var bytes = new byte[0x10048];
        "_BHRfS_M"u8.CopyTo(bytes.AsSpan(0x10040));
        File.WriteAllBytes(victim, bytes);
        var chroots = Dir("chroots");
        File.CreateSymbolicLink(Path.Combine(chroots, "btrfs.img"), victim);
        var run = await new ConsumerProject(package, _dir, chroots).RunAsync(["-t:ContainerTest"]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains($"error {ErrorCodes.NotBtrfs}", run.Output);
        Assert.Contains("a symlink is not followed", run.Output);
        Assert.DoesNotContain(MountTable.Read(), m => m.MountPoint == chroots);
        Assert.Equal(bytes, File.ReadAllBytes(victim));
    }

    [Fact]
    public void Markers_and_locks_in_a_plain_folder_never_follow_links()
    {
        var chroots = Dir("plain");
        var victim = Path.Combine(_dir, "victim");
        File.WriteAllText(victim, "precious\n");
        File.CreateSymbolicLink(Path.Combine(chroots, "CACHEDIR.TAG"), Path.Combine(_dir, "created-through-a-link"));
        File.CreateSymbolicLink(Path.Combine(chroots, ".gitignore"), victim);
        File.CreateSymbolicLink(Path.Combine(chroots, ".#bookworm.build.lck"), victim);

        new BtrfsStore(chroots, Path.Combine(chroots, "btrfs.img"), 1L << 30).EnsurePlain();
        var e = Assert.ThrowsAny<IOException>(() => FileLock.AcquireAsync(Path.Combine(chroots, ".#bookworm.build.lck"), () => { }, TimeSpan.FromSeconds(5), "the build lock", CancellationToken.None).GetAwaiter().GetResult());
        Assert.Contains("symlink", e.Message);

        Assert.False(File.Exists(Path.Combine(_dir, "created-through-a-link")));
        Assert.Equal("precious\n", File.ReadAllText(victim));
    }

    [Fact]
    public async Task The_store_is_roots_alone_and_mounted_nodev()
    {
        var run = await new ConsumerProject(package, _dir, Repo.ChrootsDir).RunAsync(["-t:NspawnPrepareImages"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, FileStatus.Of(Repo.ChrootsDir)!.Permissions);
        var mount = MountTable.Read().Last(m => m.MountPoint == Repo.ChrootsDir);
        Assert.Contains("nodev", mount.Options.Split(','));
    }
}
