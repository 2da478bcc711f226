namespace Nspawn.Build.Tests;

/// <summary>
/// The machine is a boundary, attacked from inside through the API as a hostile test would (the sample's
/// BoundaryTests do the same through the package, on both launchers): what its root leaves in a writable bind,
/// the host's disk through a device node, and the programs the host has it run to save its logs.
/// </summary>
[Collection(MachinesCollection.Name)]
public sealed class BoundaryTests(PackageFixture package) : IAsyncLifetime
{
    private readonly string _bind = Directory.CreateTempSubdirectory("nspawn-bind-").FullName;
    private const uint User = 4242;

    public async Task InitializeAsync()
    {
        await package.RequireImageAsync();
        // A folder of a user's: what the guest leaves there is theirs once the machine stops.
        Assert.Equal(0, (await Shell.RunAsync("chown", [$"{User}:{User}", _bind])).ExitCode);
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_bind, recursive: true);
        Leaks.AssertNone();
        return Task.CompletedTask;
    }

    private static Machine RecordOf(EphemeralMachine machine) => MachineRegistry.List().Single(r => r.Machine.Name == machine.Name).Machine;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task What_the_guest_leaves_in_a_writable_bind_reaches_its_owner_without_set_id_bits(bool privateUsers)
    {
        await using (var machine = await EphemeralMachine.StartAsync(new StartOptions
        {
            ImageDir = Repo.ImageDir, LogicalName = "bind", PrivateUsers = privateUsers, Binds = [new Bind(_bind, "/b", ReadOnly: false)],
        }))
        {
            var made = await machine.ExecAsync(["sh", "-c", """
                cp /bin/sh /b/rootshell && chmod 4755 /b/rootshell && ln /b/rootshell /b/again
                cp /bin/sh /b/groupshell && chmod 2755 /b/groupshell
                mkdir /b/dir && cp /bin/sh /b/dir/deep && chmod 6755 /b/dir/deep
                mknod /b/disk b 7 0 && echo made a device
                ls -l /b
                """]);
            Assert.DoesNotContain("made a device", made.StandardOutput);
            Assert.True(File.Exists(Path.Combine(_bind, "rootshell")), made.StandardOutput + made.StandardError);
        }
        foreach (var path in Directory.EnumerateFileSystemEntries(_bind, "*", SearchOption.AllDirectories))
        {
            var status = FileStatus.Of(path)!;
            Assert.True(status.IsRegularFile || status.IsDirectory, $"{path} is neither a file nor a folder");
            Assert.Equal((UnixFileMode)0, status.Permissions & (UnixFileMode.SetUser | UnixFileMode.SetGroup));
            // A file with two links is a file the guest could have linked from elsewhere: it keeps its owner, but not its set-id bits.
            if (status.Links == 1)
                Assert.Equal(User, status.Uid);
        }
    }

    [Fact]
    public async Task Without_user_namespaces_the_device_policy_still_keeps_the_hosts_disk_out()
    {
        // The unsafe opt-out: guest root is host root, with CAP_MKNOD. Only the machine's device policy stands between it and the disk.
        var loop = MountTable.Find(MountTable.Read(), Repo.ChrootsDir)!.Source;
        var device = File.ReadAllText($"/sys/class/block/{Path.GetFileName(loop)}/dev").Trim().Replace(':', ' ');
        await using var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = Repo.ImageDir, LogicalName = "nouserns", PrivateUsers = false });
        Assert.Equal(["0", "0", "4294967295"], (await machine.ExecCheckedAsync("cat", "/proc/self/uid_map")).StandardOutput.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries));
        var attempt = await machine.ExecAsync(["sh", "-c", $"mknod /tmp/disk b {device}; dd if=/tmp/disk of=/dev/null bs=512 count=1 && echo read the disk"]);
        Assert.DoesNotContain("read the disk", attempt.StandardOutput);
        Assert.Contains("Operation not permitted", attempt.StandardError);
    }

    [Fact]
    public async Task An_image_on_a_file_system_without_idmapped_mounts_is_refused_with_a_coded_error_not_chowned()
    {
        // procfs cannot be idmapped: an overlay machine's image there can be neither mapped nor (safely) booted.
        var e = await Assert.ThrowsAsync<NspawnException>(() => IdmappedMount.CreateAsync("/proc/sys", "nspawn-noidmap-00000000", 0x70FF0000, CancellationToken.None));
        IdmappedMount.Remove("nspawn-noidmap-00000000");
        Assert.Equal(ErrorCodes.NoPrivateUsers, e.Code);
        Assert.Contains("NspawnPrivateUsers=false", e.Message);
    }

    [Fact]
    public async Task Saving_the_logs_runs_the_guests_journalctl_inside_the_guest_under_its_seccomp_filter()
    {
        var results = Directory.CreateTempSubdirectory("nspawn-logs-").FullName;
        try
        {
            await using var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = Repo.ImageDir, LogicalName = "logs" });
            // A poisoned image's journalctl: it records how it runs, then does its job.
            await machine.ExecCheckedAsync("sh", "-c", """
                mv /usr/bin/journalctl /usr/bin/journalctl.real
                printf '#!/bin/sh\n{ grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; cat /proc/self/uid_map; } > /var/log/journalctl-ran-as\nexec /usr/bin/journalctl.real "$@"\n' > /usr/bin/journalctl
                chmod 755 /usr/bin/journalctl
                """);
            var saved = await MachineLogs.SaveAsync(RecordOf(machine) with { ResultsDir = results }, MachineLogs.Limit, CancellationToken.None);
            Assert.Empty(saved.Problems);
            Assert.Contains("Seccomp:\t2", await machine.ReadAllTextAsync("/var/log/journalctl-ran-as"));
            Assert.DoesNotMatch(@"^\s*0\s+0\s", (await machine.ReadAllTextAsync("/var/log/journalctl-ran-as")).Split('\n').Last(l => l.Length > 0));
            Assert.NotEmpty(File.ReadAllLines(Path.Combine(results, Defaults.LogsFolder, "logs", MachineLogs.JournalFile)));
        }
        finally
        {
            Directory.Delete(results, recursive: true);
        }
    }
}
