using static Nspawn.Build.Tests.Resolving;
using TaskItem = Microsoft.Build.Utilities.TaskItem;
using Nspawn.Build.Tasks;

namespace Nspawn.Build.Tests;

/// <summary>The private network's pure logic: ranges, the host's routes, the subnet a build takes, the command lines, the settings.</summary>
[Trait("Category", "Unit")]
public sealed class NetworkUnitTests
{
    private static Ipv4Range Range(string text) => Ipv4Range.TryParse(text)!.Value;

    [Fact]
    public void Ranges_parse_clear_host_bits_and_split_into_subnets()
    {
        Assert.Equal("10.213.0.0/16", Range("10.213.7.9/16").ToString());
        Assert.Equal("192.0.2.2/32", Range("192.0.2.2").ToString());
        foreach (var bad in new[] { "", "10.213.0.0/33", "10.213.0/16", "10.213.0.256/24", "a.b.c.d/8", "10.0.0.0/8/8", "10.0.0.0/-1" })
            Assert.Null(Ipv4Range.TryParse(bad));
        Assert.Equal(["10.213.0.0/24", "10.213.1.0/24"], Range("10.213.0.0/16").Subnets(24).Take(2).Select(r => r.ToString()));
        Assert.Equal(256, Range("10.213.0.0/16").Subnets(24).Count());
        Assert.Equal(["192.168.7.8/29"], Range("192.168.7.8/29").Subnets(24).Select(r => r.ToString()));
        Assert.True(Range("10.0.0.0/8").Overlaps(Range("10.213.4.0/24")));
        Assert.False(Range("10.213.4.0/24").Overlaps(Range("10.213.5.0/24")));
        Assert.Equal("10.213.4.1", Range("10.213.4.0/24").Address(1));
    }

    [Theory]
    [InlineData("10.213.0.0/16")]
    [InlineData("172.20.0.0/16")]
    [InlineData("192.168.77.0/24")]
    [InlineData("192.168.77.8/29")]
    public void Private_ranges_pass(string range) => Assert.Equal(Range(range), Validate.NetworkRange(range, "NspawnNetworkRange"));

    [Theory]
    [InlineData("8.8.8.0/24")]       // public addresses: a network of ours would hide real hosts
    [InlineData("10.0.0.0/7")]       // wider than private space
    [InlineData("10.213.0.1/30")]    // no room for machines
    [InlineData("10.213.0.1")]       // an address, not a range
    [InlineData("lots")]
    public void Other_ranges_fail(string range)
    {
        var e = Assert.Throws<NspawnException>(() => Validate.NetworkRange(range, "NspawnNetworkRange"));
        Assert.Equal(ErrorCodes.BadNetworkRange, e.Code);
        Assert.Contains($"NspawnNetworkRange '{range}'", e.Message);
    }

    private const string RoutesJson = """
        [{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},
         {"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.2","flags":[]},
         {"dst":"10.213.0.0/24","dev":"docker0","flags":[]},
         {"type":"local","dst":"127.0.0.0/8","table":"local","dev":"lo","flags":[]},
         {"type":"local","dst":"10.213.3.7","table":"local","dev":"wg0","flags":[]}]
        """;

    private const string AddressesJson = """
        [{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
         {"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.213.1.20","prefixlen":24}]},
         {"ifindex":3,"ifname":"ifb0","addr_info":[]}]
        """;

    [Fact]
    public void The_hosts_routes_addresses_and_name_servers_are_taken()
    {
        var routes = HostRoutes.Routes(RoutesJson).ToList();
        Assert.Equal(["192.0.2.0/24", "10.213.0.0/24", "127.0.0.0/8", "10.213.3.7/32"], routes.Select(r => r.Range.ToString()));
        Assert.Equal("a route on docker0", routes[1].What);
        Assert.Equal(["127.0.0.0/8", "10.213.1.0/24"], HostRoutes.Addresses(AddressesJson).Select(r => r.Range.ToString()));
        Assert.Equal(["10.213.2.53/32"], HostRoutes.NameServers("# x\nnameserver 10.213.2.53\nnameserver fd00::1\nsearch lan\n").Select(r => r.Range.ToString()));
    }

    [Fact]
    public void A_build_takes_the_first_24_that_nothing_uses()
    {
        IReadOnlyList<TakenRange> taken =
        [
            .. HostRoutes.Routes(RoutesJson), .. HostRoutes.Addresses(AddressesJson),
            .. HostRoutes.NameServers("nameserver 10.213.2.53\n"), new(Range("10.213.4.0/24"), "the network nsb-123456 of another build"),
        ];
        Assert.Equal("10.213.5.0/24", SubnetPicker.Pick(Range("10.213.0.0/16"), taken).ToString());
        Assert.Equal("192.168.77.0/24", SubnetPicker.Pick(Range("192.168.77.0/24"), taken).ToString());

        var e = Assert.Throws<NspawnException>(() => SubnetPicker.Pick(Range("10.213.4.0/24"), taken));
        Assert.Equal(ErrorCodes.BadNetworkRange, e.Code);
        Assert.Contains("the network nsb-123456 of another build", e.Message);
        var full = Assert.Throws<NspawnException>(() => SubnetPicker.Pick(Range("10.213.0.0/22"), taken));
        Assert.Contains("Every /24 of NspawnNetworkRange '10.213.0.0/22' is in use", full.Message);
    }

    private static readonly PrivateNetwork Network = new("nsb-1a2b3c", "10.213.5.0/24", Outbound: false);

    [Fact]
    public void A_network_has_a_gateway_and_room_for_253_machines_with_short_link_names()
    {
        Assert.Equal("10.213.5.1", Network.Gateway);
        Assert.Equal(2u, Network.MachineHosts.First());
        Assert.Equal(254u, Network.MachineHosts.Last());
        Assert.Equal(253, Network.MachineHosts.Count());
        Assert.Equal([2u, 3u, 4u, 5u, 6u], new PrivateNetwork("nsb-1a2b3c", "192.168.7.8/29", false).MachineHosts);
        Assert.Matches("^nsb-[0-9a-f]{6}$", TempNames.Bridge());
        Assert.True(Network.Veth(254).Length <= 15, "Linux interface names have at most 15 characters");
        Assert.StartsWith(TempNames.BridgePrefix, Network.Veth(2));
    }

    [Fact]
    public void Every_machine_reads_one_hosts_file_with_each_logical_name()
    {
        var record = new NetworkRecord(Network, 1, 1, [new("nspawn-server-1", "server", 2), new("nspawn-client-2", "client", 3)]);
        var lines = record.HostsText().Split('\n');
        Assert.Contains("127.0.0.1\tlocalhost", lines);
        Assert.Contains("10.213.5.2\tserver", lines);
        Assert.Contains("10.213.5.3\tclient", lines);
    }

    [Fact]
    public void A_private_machine_gets_its_link_its_name_and_everyones_names_and_none_gets_loopback_only()
    {
        var attachment = new NetworkAttachment(Network, "nspawn-web-12345678", 7);
        Assert.Equal("10.213.5.7", attachment.Address);
        var options = new LaunchOptions("web", "/c/bookworm") { MachineName = "nspawn-web-12345678", Network = NetworkMode.Private, Attachment = attachment };
        var args = options.NspawnArguments();
        Assert.Contains("--network-veth-extra=nsb-1a2b3c-7:host0", args);
        Assert.Contains($"--bind-ro={Network.HostsFile}:/etc/hosts", args);
        Assert.Contains($"--bind-ro={Network.StateDir}/nspawn-web-12345678.hostname:/etc/hostname", args);
        Assert.StartsWith("/run/nspawn-build/networks/nsb-1a2b3c/", Network.HostsFile);

        var none = (options with { Network = NetworkMode.None, Attachment = null }).NspawnArguments();
        Assert.Contains("--private-network", none);
        Assert.DoesNotContain(none, a => a.StartsWith("--network-"));
        var host = (options with { Network = NetworkMode.Host, Attachment = null }).NspawnArguments();
        Assert.DoesNotContain(host, a => a.Contains("network"));
    }

    [Fact]
    public void Outbound_rules_masquerade_the_subnet_and_let_only_replies_in()
    {
        var rules = OutboundRules.Ruleset(Network with { Outbound = true });
        Assert.Contains("table ip nsb-1a2b3c {", rules);
        Assert.Contains("ip saddr 10.213.5.0/24 oifname != \"nsb-1a2b3c\" masquerade", rules);
        Assert.Contains("oifname \"nsb-1a2b3c\" ct state established,related accept", rules);
        Assert.Contains("oifname \"nsb-1a2b3c\" drop", rules);
        Assert.Contains("iifname \"nsb-1a2b3c\" oifname != \"nsb-1a2b3c\" oifname \"nsb-*\" drop", rules);
    }

    [Fact]
    public void Binds_become_nspawn_options_with_colons_escaped()
    {
        Assert.Equal("--bind-ro=/srv/a\\:b:/opt/app", new BindMount("/srv/a:b", "/opt/app", ReadOnly: true).Argument(privateUsers: true));
        Assert.Equal("--bind=/srv/shared:/srv/shared", new BindMount("/srv/shared", "/srv/shared", ReadOnly: false).Argument(privateUsers: false));
        // In a user namespace the guest's root writes as the folder's owner, never as host root.
        Assert.Equal("--bind=/srv/shared:/srv/shared:rootidmap", new BindMount("/srv/shared", "/srv/shared", ReadOnly: false).Argument(privateUsers: true));
        var options = new LaunchOptions("web", "/c/bookworm") { Binds = [new BindMount("/srv/shared", "/data", false), new BindMount("/srv/app", "/opt/app", true)] };
        Assert.Equal(["/srv/shared"], Machine.Starting(options, null, []).WritableBinds);
        Assert.Contains("--bind-ro=/srv/app:/opt/app", options.NspawnArguments());
    }

    [Fact]
    public void A_binds_source_must_exist_when_the_machine_starts()
    {
        var dir = Directory.CreateTempSubdirectory("nspawn-bind-").FullName;
        try
        {
            new BindMount(dir, "/x", true).Check("NspawnBind 'x'");
            var missing = Assert.Throws<NspawnException>(() => new BindMount(dir + "/nope", "/x", true).Check("NspawnBind 'nope'"));
            Assert.Equal(ErrorCodes.BadPath, missing.Code);
            Assert.Contains($"NspawnBind 'nope': '{dir}/nope' does not exist", missing.Message);
        }
        finally
        {
            Directory.Delete(dir);
        }
    }

    [Fact]
    public void The_machines_file_carries_each_address_and_the_network_to_join()
    {
        var m = new Machine("web", "nspawn-web-1", "bookworm", "/c/bookworm", 10, 20, 30, 40, null, null, []) { Address = "10.213.5.2", Network = Network.Bridge };
        var json = MachinesFile.Serialize([m], NetworkMode.Private, Network);
        Assert.Contains("\"address\": \"10.213.5.2\"", json);
        Assert.Contains("\"gateway\": \"10.213.5.1\"", json);
        Assert.DoesNotContain("machineHosts", json);
        Assert.Equal("10.213.5.2", MachinesFile.Deserialize(json)[0].Address);
        Assert.Equal((NetworkMode.Private, Network), MachinesFile.DeserializeNetwork(json));
        Assert.Equal((NetworkMode.Host, (PrivateNetwork?)null), MachinesFile.DeserializeNetwork(MachinesFile.Serialize([m])));
    }
}

/// <summary>NspawnNetwork, NspawnNetworkRange, NspawnNetworkOutbound and NspawnBind through ResolveNspawnSettings on a fake build engine.</summary>
[Trait("Category", "Unit")]
public sealed class NetworkSettingsTests
{
    [Fact]
    public void By_default_machines_share_the_hosts_network_and_bind_nothing()
    {
        var (task, engine) = Resolve();
        Assert.True(task.Execute(), string.Join('\n', engine.ErrorLines));
        var network = ResolvedItems.ToNetwork(task.ResolvedNetwork);
        Assert.Equal(new NetworkSettings(NetworkMode.Host, Validate.NetworkRange(Settings.NetworkRange.DefaultText, ""), false), network);
        var options = ResolvedItems.ToLaunch(Assert.Single(task.ResolvedMachines));
        Assert.Equal(NetworkMode.Host, options.Network);
        Assert.Empty(options.Binds);
    }

    [Fact]
    public void A_private_network_with_binds_reaches_each_machine()
    {
        var (task, engine) = Resolve(t =>
        {
            t.Network = "private";
            t.NetworkRange = "192.168.77.0/24";
            t.NetworkOutbound = "true";
            t.Machines = [Item("server"), Item("client")];
            t.Binds =
            [
                Item("/work/project/bin/Debug/net8.0/", ("Destination", "/opt/app"), ("Machines", "server")),
                Item("/srv/shared", ("ReadOnly", "false")),
            ];
        });
        Assert.True(task.Execute(), string.Join('\n', engine.ErrorLines));
        Assert.Equal(new NetworkSettings(NetworkMode.Private, Validate.NetworkRange("192.168.77.0/24", ""), true), ResolvedItems.ToNetwork(task.ResolvedNetwork));
        var machines = task.ResolvedMachines.Select(ResolvedItems.ToLaunch).ToDictionary(o => o.LogicalName);
        Assert.All(machines.Values, o => Assert.Equal(NetworkMode.Private, o.Network));
        Assert.Equal([new BindMount("/work/project/bin/Debug/net8.0", "/opt/app", true), new BindMount("/srv/shared", "/srv/shared", false)], machines["server"].Binds);
        Assert.Equal([new BindMount("/srv/shared", "/srv/shared", false)], machines["client"].Binds);
    }

    [Fact]
    public void A_relative_bind_is_taken_from_the_project()
    {
        // MSBuild gives an item's FullPath from the project's folder; without one, the resolver does the same.
        var project = SettingsResolver.Resolve(new ProjectSettings
        {
            BaseDir = "/work/project", ChrootsDir = "/c", EphemeralMode = "snapshot",
            Binds = [new ProjectItem("data", new Dictionary<string, string> { ["Destination"] = "/data/" })],
        });
        Assert.Equal(new BindMount("/work/project/data", "/data", true), Assert.Single(Assert.Single(project.Machines).Binds));
    }

    [Theory]
    [InlineData("Network", "bridge", "NSPAWN0011", "NspawnNetwork 'bridge' is not one of: host, private, none")]
    [InlineData("NetworkRange", "8.8.8.0/24", "NSPAWN0017", "NspawnNetworkRange '8.8.8.0/24' is not a private IPv4 range")]
    [InlineData("NetworkOutbound", "yes", "NSPAWN0011", "NspawnNetworkOutbound 'yes' is not one of: true, false")]
    [InlineData("NetworkOutbound", "true", "NSPAWN0011", "NspawnNetworkOutbound is true but NspawnNetwork is 'host'")]
    public void A_bad_network_property_names_itself(string property, string value, string code, string message)
    {
        var (task, engine) = Resolve(t => typeof(ResolveNspawnSettings).GetProperty(property)!.SetValue(t, value));
        Assert.False(task.Execute());
        Assert.StartsWith($"error {code}: {message}", Assert.Single(engine.ErrorLines));
    }

    [Theory]
    [InlineData("Destination", "opt/app", "NSPAWN0010", "The Destination of NspawnBind '/srv/data' 'opt/app' is not an absolute path in the machine")]
    [InlineData("Destination", "/opt/../etc", "NSPAWN0010", "The Destination of NspawnBind '/srv/data' '/opt/../etc'")]
    [InlineData("ReadOnly", "no", "NSPAWN0011", "The ReadOnly of NspawnBind '/srv/data' 'no' is not one of: true, false")]
    [InlineData("Machines", "server;db", "NSPAWN0005", "The Machines of NspawnBind '/srv/data' name 'db', which is not a declared machine (there are: server)")]
    public void A_bad_bind_names_the_item_and_its_metadata(string metadata, string value, string code, string message)
    {
        var (task, engine) = Resolve(t =>
        {
            t.Machines = [Item("server")];
            t.Binds = [Item("/srv/data", (metadata, value))];
        });
        Assert.False(task.Execute());
        Assert.StartsWith($"error {code}: {message}", Assert.Single(engine.ErrorLines));
    }

    [Fact]
    public async Task StartOptions_binds_must_be_absolute()
    {
        var e = await Assert.ThrowsAsync<NspawnException>(() => EphemeralMachine.StartAsync(new StartOptions { ImageDir = "/nonexistent/bookworm", Binds = [new Bind("relative/dir")] }));
        Assert.Equal(ErrorCodes.BadPath, e.Code);
        Assert.Contains("'relative/dir' is not an absolute host path", e.Message);
        var d = await Assert.ThrowsAsync<NspawnException>(() => EphemeralMachine.StartAsync(new StartOptions { ImageDir = "/nonexistent/bookworm", Binds = [new Bind("/srv", "srv")] }));
        Assert.Contains("destination 'srv' of '/srv' is not an absolute path", d.Message);
    }
}
