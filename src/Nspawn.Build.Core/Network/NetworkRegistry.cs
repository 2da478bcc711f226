using System.Text.Json;

namespace Nspawn.Build;

/// <summary>
/// The private networks of every build on the host, under /run (gone at reboot, like the links): each one's
/// record names its bridge, subnet, owner and machines. One lock serialises what changes them, so that two
/// builds never take the same subnet, and two machines never the same address. A network whose owner is gone
/// (a build killed with SIGKILL) is removed by the next run's reaper.
/// </summary>
internal static class NetworkRegistry
{
    public static string Dir => Path.Combine(MachineLauncher.StateDir, "networks");

    private static string RecordPath(string bridge) => Path.Combine(Dir, bridge + ".json");

    /// <summary>Makes this build's network: a subnet nothing uses, the bridge with its first address, and the outbound rules.</summary>
    public static async Task<PrivateNetwork> CreateAsync(NetworkSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Outbound)
            ToolLocator.Require(Tool.Nft);
        await using var held = await LockAsync(cancellationToken);
        var taken = (await HostRoutes.ReadAsync(cancellationToken))
            .Concat(List().Select(r => new TakenRange(r.Network.Range, $"the network {r.Network.Bridge} of another build"))).ToList();
        var subnet = SubnetPicker.Pick(settings.Range, taken);
        var bridge = TempNames.Bridge();
        while (HostLinks.Exists(bridge) || File.Exists(RecordPath(bridge)))
            bridge = TempNames.Bridge();
        var network = new PrivateNetwork(bridge, subnet.ToString(), settings.Outbound);
        var self = Environment.ProcessId;
        // Recorded before anything is made: a build killed at any moment leaves a record for the reaper.
        var record = new NetworkRecord(network, self, ProcessInfo.StartTime(self) ?? 0, []);
        Save(record);
        try
        {
            Directory.CreateDirectory(network.StateDir);
            WriteHosts(record);
            await HostLinks.CreateBridgeAsync(network, cancellationToken);
            if (settings.Outbound)
            {
                IpForwarding.Enable();
                await OutboundRules.AddAsync(network, cancellationToken);
            }
        }
        catch
        {
            await RemoveCoreAsync(network, CancellationToken.None);
            throw;
        }
        return network;
    }

    /// <summary>Gives a machine the lowest free address of the network, its hostname file and a line in everyone's hosts file.</summary>
    public static async Task<NetworkAttachment> JoinAsync(PrivateNetwork network, string machineName, string logicalName, CancellationToken cancellationToken)
    {
        await using var held = await LockAsync(cancellationToken);
        var record = Load(network.Bridge) ?? throw new NspawnException(ErrorCodes.NetworkFailed,
            $"The private network {network.Bridge} is gone (its build has ended), so machine '{logicalName}' cannot join it. Start the machine while ContainerTest runs, or with another StartOptions.Network.");
        var used = record.Members.Select(m => m.Host).ToHashSet();
        var host = network.MachineHosts.Where(h => !used.Contains(h)).Select(h => (uint?)h).FirstOrDefault()
            ?? throw new NspawnException(ErrorCodes.NetworkFailed, $"The private network {network.Bridge} ({network.Subnet}) has no free address left for machine '{logicalName}'. Stop a machine first, or set NspawnNetworkRange to a larger range.");
        var attachment = new NetworkAttachment(network, machineName, host);
        record = record with { Members = [.. record.Members, new NetworkMember(machineName, logicalName, host)] };
        Save(record);
        using (var file = NativeFile.CreateNoFollow(attachment.HostnameFile))
            file.Write(System.Text.Encoding.UTF8.GetBytes(logicalName + "\n"));
        WriteHosts(record);
        return attachment;
    }

    /// <summary>Gives a stopped machine's address back; nothing when the network or the machine is not there.</summary>
    public static async Task LeaveAsync(string bridge, string machineName, CancellationToken cancellationToken)
    {
        if (!File.Exists(RecordPath(bridge)))
            return;
        await using var held = await LockAsync(cancellationToken);
        if (Load(bridge) is not { } record || record.Members.All(m => m.Machine != machineName))
            return;
        record = record with { Members = record.Members.Where(m => m.Machine != machineName).ToList() };
        Save(record);
        File.Delete(new NetworkAttachment(record.Network, machineName, 0).HostnameFile);
        WriteHosts(record);
    }

    /// <summary>Removes the network: its rules, its links and bridge, its files, then its record.</summary>
    public static async Task RemoveAsync(PrivateNetwork network, CancellationToken cancellationToken)
    {
        await using var held = await LockAsync(cancellationToken);
        await RemoveCoreAsync(network, cancellationToken);
    }

    public static IReadOnlyList<NetworkRecord> List()
    {
        if (!Directory.Exists(Dir))
            return [];
        var records = new List<NetworkRecord>();
        foreach (var file in Directory.EnumerateFiles(Dir, TempNames.BridgePrefix + "*.json"))
        {
            try
            {
                if (JsonSerializer.Deserialize<NetworkRecord>(File.ReadAllText(file), StateJson.SerializerOptions) is { } r)
                    records.Add(r);
            }
            catch (Exception e) when (e is JsonException or IOException)
            {
                // Records are renamed into place whole; an unreadable one is not ours to act on.
            }
        }
        return records;
    }

    /// <summary>
    /// Removes the networks whose build is gone (after the reaper stopped their machines), but one that a machine
    /// kept after failed tests is still on (NspawnKeepOnFailure). Returns what it removed.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ReapAsync(CancellationToken cancellationToken)
    {
        var reaped = new List<string>();
        var machines = MachineRegistry.List().Select(m => m.Machine.Name).ToHashSet();
        foreach (var record in List().Where(r => !r.OwnerAlive && !r.Members.Any(m => machines.Contains(m.Machine))))
        {
            await RemoveAsync(record.Network, cancellationToken);
            reaped.Add($"network {record.Network.Bridge} ({record.Network.Subnet}; its build, PID {record.OwnerPid}, is gone)");
        }
        return reaped;
    }

    private static async Task RemoveCoreAsync(PrivateNetwork network, CancellationToken cancellationToken)
    {
        if (network.Outbound)
            await OutboundRules.RemoveAsync(network.Bridge, cancellationToken);
        // A machine's link normally goes with its machine; one left over (a killed machine) is ours to delete.
        foreach (var veth in HostLinks.Named(network.Bridge + "-"))
            await HostLinks.DeleteAsync(veth, cancellationToken);
        if (HostLinks.IsBridge(network.Bridge))
            await HostLinks.DeleteAsync(network.Bridge, cancellationToken);
        if (network.Outbound)
            IpForwarding.Release(List().Any(r => r.Network.Outbound && r.Network.Bridge != network.Bridge));
        if (FileStatus.Of(network.StateDir) is { IsDirectory: true })
            Directory.Delete(network.StateDir, recursive: true);
        File.Delete(RecordPath(network.Bridge));
    }

    private static NetworkRecord? Load(string bridge)
    {
        try
        {
            return JsonSerializer.Deserialize<NetworkRecord>(File.ReadAllText(RecordPath(bridge)), StateJson.SerializerOptions);
        }
        catch (Exception e) when (e is JsonException or FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    private static void Save(NetworkRecord record)
    {
        var path = RecordPath(record.Network.Bridge);
        var tmp = path + ".tmp";
        using (var file = NativeFile.CreateNoFollow(tmp))
            file.Write(System.Text.Encoding.UTF8.GetBytes(JsonSerializer.Serialize(record, StateJson.SerializerOptions)));
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>
    /// Rewrites the hosts file in place: every machine has it bound (the same file), so each sees the change. The new
    /// text goes over the old, then the file is cut to it: a guest looking a name up meanwhile never finds it empty.
    /// </summary>
    private static void WriteHosts(NetworkRecord record)
    {
        var text = System.Text.Encoding.UTF8.GetBytes(record.HostsText());
        using var file = new FileStream(NativeFile.Open(record.Network.HostsFile, NativeFile.WriteOnly | NativeFile.Create, mode: 0b110_100_100), FileAccess.Write);
        file.Write(text);
        file.Flush();
        file.SetLength(text.Length);
    }

    private static async Task<FileLock> LockAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Dir);
        // Held only while a network or an address is taken or given back: a minute is ample.
        var path = Path.Combine(Dir, ".lock");
        return await FileLock.AcquireAsync(path, () => { }, TimeSpan.FromMinutes(1), $"the wait for the lock of the private networks ({path})", cancellationToken);
    }
}
