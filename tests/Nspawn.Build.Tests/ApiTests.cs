namespace Nspawn.Build.Tests;

/// <summary>Every member of the tests' API, against a real machine booted from the image.</summary>
[Collection(MachinesCollection.Name)]
public sealed class ApiTests(PackageFixture package) : IAsyncLifetime
{
    private EphemeralMachine _machine = null!;

    public async Task InitializeAsync()
    {
        await package.FirstRunAsync();
        _machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = Repo.ImageDir, LogicalName = "api" });
    }

    public async Task DisposeAsync()
    {
        await _machine.DisposeAsync();
        Leaks.AssertNone();
    }

    /// <summary>Far past what any step here needs: only turns a hang into a failure.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(1);

    [Fact]
    public async Task Exec_returns_exit_code_and_both_streams()
    {
        var r = await _machine.ExecAsync("sh", "-c", "echo out; echo err >&2; exit 7");
        Assert.Equal(new ExecResult(7, "out\n", "err\n"), r);
    }

    [Fact]
    public async Task Exec_takes_stdin_environment_working_directory_and_user()
    {
        var r = await _machine.ExecCheckedAsync(["sh", "-c", "id -un; pwd; echo \"$GREETING\"; cat"], new ExecOptions
        {
            User = "nobody",
            WorkingDirectory = "/tmp",
            Environment = new Dictionary<string, string> { ["GREETING"] = "hello world; $(not run)" },
            StandardInput = "from stdin\n",
        });
        Assert.Equal("nobody\n/tmp\nhello world; $(not run)\nfrom stdin\n", r.StandardOutput);
    }

    [Fact]
    public async Task Exec_streams_output_as_it_comes()
    {
        var lines = new List<string>();
        await _machine.ExecCheckedAsync(["sh", "-c", "echo one; echo two >&2"], new ExecOptions { OnOutput = lines.Add });
        Assert.Equal(["one", "two"], lines.Order());
    }

    [Fact]
    public async Task Output_of_both_streams_reaches_the_callback_one_line_at_a_time()
    {
        // A plain List's Add behind a slow logger, as a test writes it: two calls at once would lose lines or throw.
        var lines = new List<string>();
        var inside = 0;
        var overlaps = 0;
        void Slow(string line)
        {
            if (Interlocked.Increment(ref inside) > 1)
                Interlocked.Increment(ref overlaps);
            Thread.Sleep(1);
            lines.Add(line);
            Interlocked.Decrement(ref inside);
        }
        await _machine.ExecCheckedAsync(["sh", "-c", "i=0; while [ $i -lt 300 ]; do echo o$i; echo e$i >&2; i=$((i+1)); done"],
            new ExecOptions { OnOutput = Slow });
        Assert.Equal(0, overlaps);
        Assert.Equal(600, lines.Distinct().Count());
    }

    [Fact]
    public async Task ExecChecked_throws_with_both_streams()
    {
        var e = await Assert.ThrowsAsync<ExecException>(() => _machine.ExecCheckedAsync("sh", "-c", "echo visible; echo broken >&2; exit 3"));
        Assert.Equal(3, e.Result.ExitCode);
        Assert.Contains("visible", e.Message);
        Assert.Contains("broken", e.Message);
    }

    [Fact]
    public async Task A_command_that_cannot_start_says_why()
    {
        // As a shell says it: 127, not found.
        var missing = await _machine.ExecAsync("no-such-command-4747");
        Assert.True(missing.ExitCode == 127 && missing.StandardError.Contains("no-such-command-4747"), missing.ToString());
        // As systemd says it of a service (200/CHDIR): the folder is named.
        var folder = await _machine.ExecAsync(["true"], new ExecOptions { WorkingDirectory = "/no/such/folder" });
        Assert.True(folder.ExitCode == 200 && folder.StandardError.Contains("/no/such/folder"), folder.ToString());
        // A user's groups come from the guest's /etc/group (as initgroups): the agent starts the command as that user itself.
        Assert.Equal("nogroup\n", (await _machine.ExecCheckedAsync(["id", "-Gn"], new ExecOptions { User = "nobody" })).StandardOutput);
        Assert.Equal("uid=4848 gid=4848 groups=4848\n", (await _machine.ExecCheckedAsync(["id"], new ExecOptions { User = "4848" })).StandardOutput);
    }

    [Fact]
    public async Task What_a_command_leaves_running_is_killed_when_it_ends()
    {
        // The command ends once its background sleep runs (its cmdline says so), and then that sleep goes with it.
        await _machine.ExecCheckedAsync("sh", "-c", "sleep 4646 >/dev/null 2>&1 & while ! grep -q 4646 /proc/$!/cmdline 2>/dev/null; do :; done");
        Assert.True(await Shell.WaitUntilAsync(() => Processes.Named("sleep 4646").Count == 0, Patience), "what the command left running still runs");
        // Its cgroup serves the next command clean.
        Assert.Contains($"/system.slice/{Agent.AgentSetup.UnitName}/cmd-", (await _machine.ExecCheckedAsync("cat", "/proc/self/cgroup")).StandardOutput);
    }

    [Fact]
    public async Task A_command_gets_the_signals_a_service_of_the_guest_gets()
    {
        // SIGPIPE ignored (systemd's IgnoreSIGPIPE=yes, and what .NET's Process and sh pass on from the agent), no other
        // ignored, none blocked: a writer to a closed pipe gets EPIPE, as in any service of the guest.
        var status = (await _machine.ExecCheckedAsync("cat", "/proc/self/status")).StandardOutput;
        Assert.Contains("SigIgn:\t0000000000001000\n", status);
        Assert.Contains("SigBlk:\t0000000000000000\n", status);
        // The agent's own, which the shell's way (its fallback, the managed agent's) passes on: both ways are the same.
        var agent = await _machine.ExecCheckedAsync("sh", "-c", "grep SigIgn: /proc/$(systemctl show -P MainPID \"$0\")/status", Agent.AgentSetup.UnitName);
        Assert.Equal("SigIgn:\t0000000000001000\n", agent.StandardOutput);
    }

    [Fact]
    public async Task A_cgroup_a_command_changed_is_not_handed_to_the_next()
    {
        // Each command says its cgroup's state: it runs at all (a frozen cgroup would hang it), not frozen, nothing below it.
        // The guest's own hierarchy is the "0::" line (the host's v1 ones may show too); no process forked, which a freeze would stop.
        const string Own = "while IFS=: read -r id _ path; do [ \"$id\" = 0 ] && cg=/sys/fs/cgroup$path; done < /proc/self/cgroup; ";
        async Task AssertCleanAsync()
        {
            var r = await Shell.EndsWithin(_machine.ExecAsync("sh", "-c", Own + "cat $cg/cgroup.freeze; grep '^nr_descendants ' $cg/cgroup.stat"), Patience);
            Assert.Equal(new ExecResult(0, "0\nnr_descendants 0\n", ""), r);
        }
        await AssertCleanAsync();
        // A cgroup below its own, left empty: the command's cgroup is empty too once it ends.
        await _machine.ExecCheckedAsync("sh", "-c", Own + "mkdir $cg/below");
        await AssertCleanAsync();
        // A command that freezes its own cgroup freezes itself: killed from another command, it leaves that cgroup empty and frozen.
        var pid = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var frozen = _machine.ExecAsync(["sh", "-c", Own + "echo $$; echo 1 > $cg/cgroup.freeze; echo never"], new ExecOptions { OnOutput = line => pid.TrySetResult(line) });
        var guestPid = await Shell.EndsWithin(pid.Task, Patience);
        Assert.True(await Shell.WaitUntilAsync(async () => (await _machine.ExecAsync("sh", "-c", "grep -qx 'frozen 1' /sys/fs/cgroup$(grep '^0::' /proc/$0/cgroup | cut -d: -f3)/cgroup.events", guestPid)).ExitCode == 0, Patience),
            "the command's cgroup never froze");
        await _machine.ExecCheckedAsync("sh", "-c", "kill -9 \"$0\"", guestPid);
        Assert.Equal(new ExecResult(137, guestPid + "\n", ""), await Shell.EndsWithin(frozen, Patience));
        await AssertCleanAsync();
        await AssertCleanAsync();
    }

    [Fact]
    public async Task A_timeout_kills_the_command_inside_the_machine()
    {
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var running = _machine.ExecAsync(["sh", "-c", "sleep 4242; echo never"], new ExecOptions { Timeout = TimeSpan.FromSeconds(5), OnOutput = output.Enqueue });
        // Seen running before the call ended: what the timeout ends is a command that ran.
        var seen = false;
        await Shell.WaitUntilAsync(() => (seen = Processes.Named("sleep 4242").Count == 1) || running.IsCompleted, Patience);
        Assert.True(seen, "the command was never seen running");
        // The call ends by its timeout (a hang fails the test), and the command with it: it never got to its echo.
        await Assert.ThrowsAsync<TimeoutException>(() => Shell.EndsWithin(running, Patience));
        Assert.True(await Shell.WaitUntilAsync(() => Processes.Named("sleep 4242").Count == 0, Patience), "the command still runs in the machine");
        Assert.Empty(output);
    }

    [Fact]
    public async Task Cancellation_kills_the_command_inside_the_machine()
    {
        using var cts = new CancellationTokenSource();
        var running = _machine.ExecAsync(["sleep", "4343"], null, cts.Token);
        Assert.True(await Shell.WaitUntilAsync(() => Processes.Named("sleep 4343").Count == 1, Patience), "the command did not start");
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Shell.EndsWithin(running, Patience));
        Assert.True(await Shell.WaitUntilAsync(() => Processes.Named("sleep 4343").Count == 0, Patience), "the command still runs in the machine");
    }

    [Fact]
    public async Task Files_go_in_with_modes_and_owners_and_come_out_with_modes()
    {
        var host = Directory.CreateTempSubdirectory("nspawn-files-").FullName;
        try
        {
            var dir = Directory.CreateDirectory(Path.Combine(host, "payload")).FullName;
            File.WriteAllText(Path.Combine(dir, "tool.sh"), "#!/bin/sh\necho tool\n");
            File.SetUnixFileMode(Path.Combine(dir, "tool.sh"), (UnixFileMode)0b111_101_000);
            await Cli.Wrap("chown").WithArguments(["1234:1234", Path.Combine(dir, "tool.sh")]).ExecuteAsync();

            await _machine.CopyToAsync(dir, "/opt");
            Assert.Equal("750 1234 1234", (await _machine.ExecCheckedAsync("stat", "-c", "%a %u %g", "/opt/payload/tool.sh")).StandardOutput.Trim());
            Assert.Equal("tool\n", (await _machine.ExecCheckedAsync("/opt/payload/tool.sh")).StandardOutput);

            await _machine.WriteAllTextAsync("/etc/secret.conf", "key=value\n", (UnixFileMode)0b110_000_000, owner: "nobody", group: "nogroup");
            Assert.Equal("600 nobody nogroup", (await _machine.ExecCheckedAsync("stat", "-c", "%a %U %G", "/etc/secret.conf")).StandardOutput.Trim());
            Assert.Equal("key=value\n", await _machine.ReadAllTextAsync("/etc/secret.conf"));
            Assert.Equal([1, 2, 255], await WriteAndRead([1, 2, 255]));

            var back = Directory.CreateDirectory(Path.Combine(host, "back")).FullName;
            await _machine.CopyFromAsync("/etc/secret.conf", back);
            Assert.Equal("key=value\n", File.ReadAllText(Path.Combine(back, "secret.conf")));
            Assert.Equal((UnixFileMode)0b110_000_000, File.GetUnixFileMode(Path.Combine(back, "secret.conf")));
            // Copies out of a machine are the caller's, whoever owned them there.
            Assert.Equal(ProcessPrivileges.Current.Caller.Uid.ToString(), (await Cli.Wrap("stat").WithArguments(["-c", "%u", Path.Combine(back, "secret.conf")]).ExecuteBufferedAsync()).StandardOutput.Trim());

            await Assert.ThrowsAnyAsync<IOException>(() => _machine.ReadFileAsync("/no/such/file"));
            await Assert.ThrowsAsync<IOException>(() => _machine.CopyFromAsync("/no/such/file", back));
        }
        finally
        {
            Directory.Delete(host, recursive: true);
        }
    }

    private async Task<byte[]> WriteAndRead(byte[] content)
    {
        await _machine.WriteFileAsync("/root/bytes", content);
        return await _machine.ReadFileAsync("/root/bytes");
    }

    [Fact]
    public async Task Readiness_beyond_READY()
    {
        Assert.True(await _machine.IsSystemRunningAsync(TimeSpan.FromSeconds(30)));
        await _machine.WaitForUnitAsync("dbus.service", TimeSpan.FromSeconds(30));
        await _machine.ExecAsync("systemd-run", "--unit=broken", "--service-type=oneshot", "false");
        await Assert.ThrowsAsync<InvalidOperationException>(() => _machine.WaitForUnitAsync("broken.service", TimeSpan.FromSeconds(10)));
        await Assert.ThrowsAsync<TimeoutException>(() => _machine.WaitForUnitAsync("no-such.service", TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task The_journal_is_the_guests_since_a_moment_and_of_a_unit()
    {
        await _machine.ExecCheckedAsync("logger", "--tag", "api", "before");
        // Read at once: the read has journald take in what it has not read yet. The line is stamped when the journal
        // takes it in: once it is there, a later millisecond (what --since counts in) is after it.
        Assert.Contains(await _machine.GetJournalAsync(), l => l.EndsWith(": before"));
        var there = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        Assert.True(await Shell.WaitUntilAsync(() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() > there, Patience));
        var since = DateTimeOffset.UtcNow;
        await _machine.ExecCheckedAsync("logger", "--tag", "api", "after");
        await _machine.ExecCheckedAsync("systemd-run", "--unit=api-echo", "--wait", "--quiet", "echo", "from a unit");

        var lines = await _machine.GetJournalAsync(since);
        Assert.Contains(lines, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\w{3} [ \d]\d \d\d:\d\d:\d\d\.\d{6} bookworm api\[\d+\]: after$"));
        Assert.DoesNotContain(lines, l => l.EndsWith(": before"));
        Assert.Contains(await _machine.GetJournalAsync(), l => l.EndsWith(": before"));
        var unit = await _machine.GetJournalAsync(since, "api-echo.service");
        Assert.Contains(unit, l => l.EndsWith(": from a unit"));
        Assert.DoesNotContain(unit, l => l.EndsWith(": after"));
    }

    [Fact]
    public async Task OnConsole_streams_the_console_from_the_boot_to_the_stop()
    {
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var stopped = false;
        var late = new System.Collections.Concurrent.ConcurrentQueue<string>();
        void OnConsole(string line)
        {
            if (Volatile.Read(ref stopped))
                late.Enqueue(line);
            lines.Enqueue(line);
        }
        var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = Repo.ImageDir, LogicalName = "console", OnConsole = OnConsole });
        await using (machine)
        {
            Assert.True(await Shell.WaitUntilAsync(() => lines.Contains("Welcome to Debian GNU/Linux 12 (bookworm)!"), Patience), string.Join('\n', lines));
            await machine.ExecCheckedAsync("sh", "-c", "echo written to the console > /dev/console");
            Assert.True(await Shell.WaitUntilAsync(() => lines.Contains("written to the console"), Patience), string.Join('\n', lines));
        }
        Volatile.Write(ref stopped, true);
        // The power-off's lines came too: systemd's own for the target every shutdown reaches (the image's shutdown.target, described "System Shutdown").
        Assert.Contains(lines, l => l.EndsWith("Reached target shutdown.target - System Shutdown.", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains('\x1b') || l.Contains('\r'));
        // The stop returned once the follower had read the console to its end: a line after it fails the test whenever it is seen.
        Assert.Empty(late);
    }

    [Fact]
    public async Task What_a_command_leaves_running_dies_with_the_machine()
    {
        var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = Repo.ImageDir, LogicalName = "bg" });
        await using (machine)
        {
            await machine.ExecCheckedAsync("systemd-run", "--unit=left-behind", "sleep", "4545");
            Assert.True(await Shell.WaitUntilAsync(() => Processes.Named("sleep 4545").Count == 1, Patience));
        }
        Assert.Empty(Processes.Named("sleep 4545"));
        Assert.DoesNotContain(MachineRegistry.List(), r => r.Machine.Name == machine.Name);
    }

    [Fact]
    public async Task A_machine_started_by_a_test_is_gone_after_dispose_also_when_the_test_throws()
    {
        EphemeralMachine? started = null;
        await Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            await using var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = Repo.ImageDir, LogicalName = "throws" });
            started = machine;
            throw new InvalidOperationException("the test failed");
        });
        Assert.NotNull(started);
        Assert.False(Directory.Exists($"/proc/{started.LeaderPid}"), "the machine still runs");
        Assert.DoesNotContain(MachineRegistry.List(), r => r.Machine.Name == started.Name);
    }

    [Fact]
    public async Task A_machine_a_test_forgets_is_stopped_when_the_test_process_exits()
    {
        var baseline = Records.Baseline();
        var snapshots = Snapshots();
        var run = await Shell.RunAsync(ConsumerProject.Dotnet, ["exec", typeof(Program).Assembly.Location, "forget", Repo.ImageDir]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var started = System.Text.RegularExpressions.Regex.Match(run.Output, @"started (\S+) (\d+) (\d+)");
        Assert.True(started.Success, run.ToString());
        // It booted, and by the time the process is gone so are its nspawn, its snapshot and its record.
        Assert.StartsWith("nspawn-forgotten-", started.Groups[1].Value);
        Assert.False(ProcessInfo.IsRunning(int.Parse(started.Groups[2].Value), ulong.Parse(started.Groups[3].Value)), "the forgotten machine still runs");
        Assert.Empty(Records.Since(baseline));
        Assert.Equal(snapshots, Snapshots());
    }

    private static IReadOnlyList<string> Snapshots() => Directory.EnumerateFileSystemEntries(Repo.ChrootsDir, ".#machine.*").Order().ToList();

    [Fact]
    public async Task Files_not_readable_by_all_cannot_be_read_in_the_machine()
    {
        // As a umask of 077 leaves them: in the tests' output folder, which every machine gets read-only, and in a read-only bind.
        var bound = Directory.CreateTempSubdirectory("nspawn-umask-").FullName;
        File.SetUnixFileMode(bound, (UnixFileMode)0b111_101_101);
        var name = $"umask-{Guid.NewGuid():N}";
        var files = new[] { AppContext.BaseDirectory, bound }.SelectMany(dir => new[] { (Path.Combine(dir, name + "-022"), (UnixFileMode)0b110_100_100), (Path.Combine(dir, name + "-077"), (UnixFileMode)0b110_000_000) }).ToList();
        try
        {
            foreach (var (path, mode) in files)
            {
                File.WriteAllText(path, "content\n");
                File.SetUnixFileMode(path, mode);
            }
            await using var machine = await EphemeralMachine.StartAsync(new StartOptions { ImageDir = Repo.ImageDir, LogicalName = "umask", Binds = [new Bind(bound, "/srv/bound")] });
            var code = Path.Combine(AppContext.BaseDirectory, name);
            var guest = Path.Combine("/srv/bound", name);
            foreach (var readable in new[] { code, guest })
                Assert.Equal("content\n", (await machine.ExecCheckedAsync("cat", readable + "-022")).StandardOutput);
            foreach (var hidden in new[] { code, guest })
            {
                var r = await machine.ExecAsync("cat", hidden + "-077");
                Assert.NotEqual(0, r.ExitCode);
                Assert.Contains("Permission denied", r.StandardError);
            }
        }
        finally
        {
            foreach (var (path, _) in files)
                File.Delete(path);
            Directory.Delete(bound, recursive: true);
        }
    }

    [Fact]
    public async Task An_environment_machine_is_left_to_the_targets()
    {
        var file = Path.Combine(Path.GetTempPath(), $"machines-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, MachinesFile.Serialize([MachinesFileOf(_machine)]));
        var scope = new EnvironmentScope("NSPAWN_MACHINES_FILE", file);
        try
        {
            var fromEnv = EphemeralMachine.FromEnvironment();
            Assert.False(fromEnv.IsOwned);
            Assert.Equal(_machine.Name, EphemeralMachine.FromEnvironment("api").Name);
            Assert.Throws<InvalidOperationException>(() => EphemeralMachine.FromEnvironment("other"));
            await fromEnv.DisposeAsync();
            Assert.Equal(0, (await _machine.ExecAsync("true")).ExitCode);
        }
        finally
        {
            scope.Dispose();
            File.Delete(file);
        }
        var e = Assert.Throws<InvalidOperationException>(() => EphemeralMachine.FromEnvironment());
        Assert.Contains("sudo dotnet build -t:ContainerTest", e.Message);
    }

    private static Machine MachinesFileOf(EphemeralMachine m) =>
        MachineRegistry.List().Single(r => r.Machine.Name == m.Name).Machine;
}
