using Nspawn.Build.Agent;

namespace Nspawn.Build;

/// <summary>
/// Boots and stops ephemeral machines (the seed's Chroot class), through the launcher each machine needs:
/// <see cref="SystemdUnitLauncher"/> with host systemd, <see cref="DirectLauncher"/> without it. What is
/// common to both (checks, the registry, the snapshot, the cgroups) is done here.
/// </summary>
internal static class MachineLauncher
{
    public const string StateDir = "/run/nspawn-build";

    private static IMachineLauncher For(bool useSystemdRun) => useSystemdRun ? SystemdUnitLauncher.Instance : DirectLauncher.Instance;

    /// <summary>Everything that can be checked before anything is created.</summary>
    public static void Check(LaunchOptions options)
    {
        Privilege.RequireRoot();
        ToolLocator.Require(Tool.SystemdNspawn);
        For(options.UseSystemdRun).Check();
        if (options.PrivateUsers)
            PrivateUsersCheck.Require(options.UseSystemdRun);
        if (options.Network == NetworkMode.Private)
        {
            ToolLocator.Require(Tool.Ip);
            ToolLocator.Require(Tool.Nsenter);
        }
    }

    public static async Task<Machine> StartAsync(LaunchOptions options, CancellationToken cancellationToken)
    {
        var started = DateTime.UtcNow;
        Check(options);
        if (!File.Exists(Path.Combine(options.ImageDir, ImageBuilder.StampPath)) && !File.Exists(Path.Combine(options.ImageDir, "etc/os-release")) && !File.Exists(Path.Combine(options.ImageDir, "usr/lib/os-release")))
            throw new NspawnException(ErrorCodes.ImageMissing,
                $"The image '{options.ImageDir}' for machine '{options.LogicalName}' does not exist or holds no OS. Build it first (the NspawnPrepareImages target), or fix the machine's Image.");
        if (MachineRegistry.Contains(options.MachineName))
            throw new NspawnException(ErrorCodes.BadMachineName, $"A machine named '{options.MachineName}' is already running. Stop it first, or give this one another name.");
        foreach (var bind in options.Binds)
            bind.Check($"A bind of machine '{options.LogicalName}'");
        if (options.PrivateUsers)
            WritableBinds.GiveToSudoUser(options.Binds);
        Directory.CreateDirectory(StateDir);
        if (options.Network == NetworkMode.Private)
            options = options with
            {
                Attachment = await NetworkRegistry.JoinAsync(options.PrivateNetwork ?? throw new InvalidOperationException("A machine on a private network needs the network."),
                    options.MachineName, options.LogicalName, cancellationToken),
            };
        Machine machine;
        try
        {
            // Guest root becomes a host UID of its own, nobody on the host.
            if (options.PrivateUsers)
                options = options with { UidShift = UidRange.Claim(options.MachineName) };
            if (options is { UidShift: { } shift, Mode: EphemeralMode.Overlay })
                options = options with { MappedImageDir = await IdmappedMount.CreateAsync(options.ImageDir, options.MachineName, shift, cancellationToken) };
            // Here, so that a failure from now on takes the agent folder and the address back.
            var (agentOptions, initArguments, problem) = AgentSetup.Prepare(options.MachineName, options.CodeDir, options.UidShift);
            options = options with { AgentArguments = agentOptions, InitArguments = initArguments, AgentProblem = problem };
            machine = await For(options.UseSystemdRun).StartAsync(options, cancellationToken);
        }
        catch (NspawnException e) when (options.UidShift is not null && e.Message.Contains("ID mapped mounts are apparently not available", StringComparison.Ordinal))
        {
            await ReleaseAsync(options);
            throw new NspawnException(ErrorCodes.NoPrivateUsers,
                $"Machine '{options.LogicalName}' cannot run in a user namespace here: the kernel or the file system of '{options.ImageDir}' has no idmapped mounts (Linux 5.12 or later; btrfs from 5.15). "
                + "Move the chroots folder to a file system that has them, or, only for trusted images and tests, set NspawnPrivateUsers=false (unsafe: the guest's root is then the host's root).");
        }
        catch
        {
            await ReleaseAsync(options);
            throw;
        }
        try
        {
            if (options.Attachment is { } joined)
                await GuestNetwork.ConfigureAsync(machine, joined, cancellationToken);
            // Started when its agent answers (or is known not to run there), within what is left of the boot time.
            machine = await AgentSetup.WaitAsync(machine, options.AgentProblem, options.BootTimeout - (DateTime.UtcNow - started), cancellationToken);
        }
        catch
        {
            // Stopping it gives back its address and removes its agent folder too.
            await StopAsync(machine, CancellationToken.None);
            throw;
        }
        MachineRegistry.Add(machine);
        return machine;
    }

    /// <summary>What a start that failed before its machine was up had taken: its agent folder, mapped image, UIDs and address.</summary>
    private static async Task ReleaseAsync(LaunchOptions options)
    {
        AgentSetup.Remove(options.MachineName);
        if (!MachineRegistry.Contains(options.MachineName))
            IdmappedMount.Remove(options.MachineName);
        // A failed start has stopped what it started (the launcher's own cleanup): the range is free again.
        if (options.UidShift is { } claimed && !MachineRegistry.Contains(options.MachineName))
            UidRange.Release(claimed, options.MachineName);
        if (options.Attachment is { } attachment)
            await NetworkRegistry.LeaveAsync(attachment.Network.Bridge, options.MachineName, CancellationToken.None);
    }

    /// <summary>
    /// Boots every machine at once and returns when each has reached READY=1. If one fails, those that came
    /// up are stopped (each said through <paramref name="progress"/>) and the first failure is thrown.
    /// </summary>
    public static async Task<IReadOnlyList<Machine>> StartAllAsync(IReadOnlyList<LaunchOptions> options, Action<string> progress, CancellationToken cancellationToken)
    {
        var starts = options.Select(o => StartAsync(o, cancellationToken)).ToList();
        try
        {
            await Task.WhenAll(starts);
        }
        catch
        {
            foreach (var stopped in await Task.WhenAll(starts.Where(t => t.IsCompletedSuccessfully).Select(t => StopAsync(t.Result, CancellationToken.None))))
                progress($"Stopped {stopped}, since another machine did not start.");
            throw starts.Select(t => t.Exception?.InnerException).OfType<NspawnException>().FirstOrDefault()
                ?? starts.First(t => t.IsFaulted || t.IsCanceled).Exception?.InnerException ?? new OperationCanceledException();
        }
        return starts.Select(t => t.Result).ToList();
    }

    /// <summary>What a build says once its machines are up.</summary>
    public static string Describe(IReadOnlyList<Machine> machines, TimeSpan took) =>
        $"Started {string.Join(", ", machines.Select(m => $"'{m.LogicalName}' ({m.Name}, {(m.Unit is null ? "" : $"unit {m.Unit}, ")}image {m.Image}, {(m.Address is null ? "" : $"address {m.Address}, ")}leader PID {m.LeaderPid})"))} in {took.TotalSeconds:0.0} s.";

    /// <summary>
    /// Powers the machine off, waits up to its <see cref="Machine.StopTimeout"/>, then kills what is left (first
    /// calling <paramref name="beforeKill"/>, to save the logs of a guest that would not power off).
    /// Succeeds only when nspawn is gone and its snapshot removed; says how it went.
    /// </summary>
    public static async Task<StopOutcome> StopAsync(Machine machine, CancellationToken cancellationToken, Func<Task>? beforeKill = null)
    {
        var started = DateTime.UtcNow;
        // A boot stopped early (its timeout) may not have had its snapshot when it was looked for: nspawn, still alive
        // just before the kill, names it then (its lock comes before the snapshot), for us to remove once nspawn is killed.
        var snapshot = machine.Snapshot;
        async Task BeforeKill()
        {
            // Read only from that nspawn: alive before and after the read, its PID was not another process's meanwhile.
            if (snapshot is null && ProcessInfo.IsRunning(machine.NspawnPid, machine.NspawnStartTime)
                && FindSnapshot(machine.NspawnPid) is { } found && ProcessInfo.IsRunning(machine.NspawnPid, machine.NspawnStartTime))
                snapshot = found;
            if (beforeKill is not null)
                await beforeKill();
        }
        var poweredOff = await For(machine.Unit is not null).PowerOffAsync(machine, BeforeKill, cancellationToken);
        // What is left in the machine's cgroups (a guest whose nspawn was killed) is killed, then the cgroups removed.
        var cgroups = new CgroupScope(machine.Cgroups);
        await cgroups.KillAllAsync(TimeSpan.FromSeconds(5));
        cgroups.Remove();

        // nspawn removes its snapshot on a clean exit; after a kill it is ours to remove (the folder nspawn made, never what a link there points to).
        if (snapshot is not null)
        {
            await Subvolumes.RemoveTreeAsync(Path.GetDirectoryName(snapshot)!, snapshot, cancellationToken);
            StoreEntry.RemoveFile(TempNames.SnapshotLock(snapshot));
        }
        File.Delete(Path.Combine(StateDir, machine.Name + ".notify"));
        AgentSetup.Remove(machine.Name);
        IdmappedMount.Remove(machine.Name);

        var stopped = !ProcessInfo.IsRunning(machine.NspawnPid, machine.NspawnStartTime) && !(snapshot is not null && FileStatus.Of(snapshot) is not null);
        if (stopped)
        {
            // Its address is free again once it is gone.
            if (machine.Network is { } bridge)
                await NetworkRegistry.LeaveAsync(bridge, machine.Name, CancellationToken.None);
            if (machine.ConsoleFile is { } console)
                File.Delete(console);
            // No process of it is left (its cgroups are empty): its UIDs may serve another machine.
            if (machine.UidShift is { } shift)
                UidRange.Release(shift, machine.Name);
            MachineRegistry.Remove(machine.Name);
            return new StopOutcome(machine, poweredOff, DateTime.UtcNow - started);
        }
        throw new NspawnException(ErrorCodes.StopFailed,
                $"Machine '{machine.LogicalName}' ({machine.Name}) could not be stopped: nspawn PID {machine.NspawnPid} or snapshot '{snapshot}' is still there. Stop it by hand (kill {machine.NspawnPid}; btrfs subvolume delete '{snapshot}').");
    }

    /// <summary>nspawn holds a lock next to its snapshot (<see cref="TempNames.SnapshotFromLock"/>): that names the snapshot.</summary>
    public static string? FindSnapshot(int nspawnPid)
    {
        try
        {
            foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{nspawnPid}/fd"))
                if (TempNames.SnapshotFromLock(new FileInfo(fd).LinkTarget) is { } snapshot)
                    return snapshot;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }
}
