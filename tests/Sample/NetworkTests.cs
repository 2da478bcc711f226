using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using Nspawn.Testing;
using Xunit;

namespace Sample.Tests;

/// <summary>In each machine, a service on TCP port 80 that tells whoever connects the machine's hostname.</summary>
public sealed class HelloServices : IAsyncLifetime
{
    public EphemeralMachine Server { get; } = EphemeralMachine.FromEnvironment("server");
    public EphemeralMachine Client { get; } = EphemeralMachine.FromEnvironment("client");

    public async Task InitializeAsync()
    {
        foreach (var machine in new[] { Server, Client })
        {
            await machine.ExecCheckedAsync("systemd-run", "--unit=hello", "--", "systemd-socket-activate", "--listen=80", "--accept", "--inetd", "hostname");
            await machine.WaitForUnitAsync("hello.service", TimeSpan.FromSeconds(30));
            // Active is started, not yet listening: the tests connect once, so the port is waited for here.
            if (machine.Address is { } address)
                await AskAsync(address);
        }
    }

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>What the service at this address says, from the test process (retried while it comes up).</summary>
    public static async Task<string> AskAsync(System.Net.IPAddress address)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(address, 80);
                using var reader = new StreamReader(tcp.GetStream());
                return (await reader.ReadToEndAsync()).Trim();
            }
            catch (SocketException) when (attempt < 50)
            {
                await Task.Delay(200);
            }
        }
    }
}

/// <summary>NspawnNetwork=private: two machines as hosts of a network of their own, reached from the test by address.</summary>
public class NetworkTests(HelloServices hello) : IClassFixture<HelloServices>
{
    [Fact]
    public async Task Both_machines_listen_on_the_same_port_and_the_test_reaches_each_at_its_address()
    {
        Assert.NotNull(hello.Server.Address);
        Assert.NotNull(hello.Client.Address);
        Assert.NotEqual(hello.Server.Address, hello.Client.Address);
        Assert.Equal("server", await HelloServices.AskAsync(hello.Server.Address!));
        Assert.Equal("client", await HelloServices.AskAsync(hello.Client.Address!));
    }

    [Fact]
    public async Task The_client_reaches_the_server_by_its_logical_name()
    {
        var hosts = await hello.Client.ExecCheckedAsync("getent", "hosts", "server");
        Assert.Equal(hello.Server.Address!.ToString(), hosts.StandardOutput.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0]);
        var answer = await hello.Client.ExecCheckedAsync("bash", "-c", "exec 3<>/dev/tcp/server/80 && cat <&3");
        Assert.Equal("server", answer.StandardOutput.Trim());
    }

    [Fact]
    public async Task There_is_no_route_out_of_the_network()
    {
        // /proc/net/route lists the routes: only the network's own, no default route (destination 00000000).
        // Read by a guest process: the machine's own /proc is not a file of its root folder.
        var routes = (await hello.Client.ExecCheckedAsync("cat", "/proc/net/route")).StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
        Assert.NotEmpty(routes);
        Assert.DoesNotContain(routes, r => r.Split('\t')[1] == "00000000");
    }

    [Fact]
    public async Task A_machine_of_the_tests_own_joins_the_network()
    {
        await using var own = await EphemeralMachine.StartAsync(new() { LogicalName = "joiner" });
        Assert.NotNull(own.Address);
        Assert.Equal("joiner", (await own.ExecCheckedAsync("hostname")).StandardOutput.Trim());
        Assert.Equal("server", (await own.ExecCheckedAsync("bash", "-c", "exec 3<>/dev/tcp/server/80 && cat <&3")).StandardOutput.Trim());
        // The others resolve it by name too.
        var seen = await hello.Server.ExecCheckedAsync("getent", "hosts", "joiner");
        Assert.StartsWith(own.Address!.ToString() + " ", seen.StandardOutput);
    }
}

/// <summary>NspawnBind: the build's output in the server, read-only, and a folder the server writes.</summary>
public class BindTests
{
    private readonly EphemeralMachine _server = EphemeralMachine.FromEnvironment("server");

    [Fact]
    public async Task The_server_sees_the_builds_output_read_only()
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "Sample.Tests.dll");
        var inside = await _server.ReadFileAsync("/opt/app/Sample.Tests.dll");
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(dll)), SHA256.HashData(inside));
        var write = await _server.ExecAsync("touch", "/opt/app/written");
        Assert.NotEqual(0, write.ExitCode);
        Assert.Contains("Read-only file system", write.StandardError);
        // Only where the item says (Machines="server").
        Assert.NotEqual(0, (await EphemeralMachine.FromEnvironment("client").ExecAsync("test", "-e", "/opt/app")).ExitCode);
    }

    [Fact]
    public async Task The_server_writes_into_its_writable_bind()
    {
        await _server.ExecCheckedAsync("sh", "-c", "hostname > /srv/shared/from-server.txt");
        // The host folder (obj/shared of the project, next to bin/): the package's own tests check, after the run, that it is the user's.
        var onHost = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../obj/shared/from-server.txt"));
        Assert.Equal("server\n", File.ReadAllText(onHost));
    }
}

/// <summary>
/// A machine of the test's own with a writable bind of a folder of the test's. In the collection that runs
/// alone: credentials belong to the whole process, and the folder must be made as the user, not while
/// another test's call is root.
/// </summary>
[Collection(PrivilegesCollection.Name)]
public class WritableBindTests
{
    [Fact]
    public async Task What_a_machine_writes_in_a_writable_bind_is_the_users_once_it_stops()
    {
        _ = EphemeralMachine.FromEnvironment(); // the API drops root on first use, under sudo
        // A folder of the test's (under sudo the test runs as the user, so it is the user's).
        var dir = Directory.CreateTempSubdirectory("sample-bind-").FullName;
        try
        {
            await using (var own = await EphemeralMachine.StartAsync(new() { LogicalName = "writer", Binds = [new Bind(dir, "/srv/out", ReadOnly: false)] }))
                await own.ExecCheckedAsync("sh", "-c", "echo written > /srv/out/by-root.txt");
            var expected = Environment.GetEnvironmentVariable("SUDO_UID") is { Length: > 0 } uid && uid != "0" ? uid : "0";
            Assert.Equal("written\n", File.ReadAllText(Path.Combine(dir, "by-root.txt")));
            Assert.Equal(expected, await OwnerAsync(Path.Combine(dir, "by-root.txt")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<string> OwnerAsync(string path)
    {
        using var stat = Process.Start(new ProcessStartInfo("stat", ["-c", "%u", path]) { RedirectStandardOutput = true })!;
        var owner = await stat.StandardOutput.ReadToEndAsync();
        await stat.WaitForExitAsync();
        return owner.Trim();
    }
}
