using System.Collections;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Nspawn.Build.Agent;
using Xunit;

namespace Nspawn.Build.Tests;

/// <summary>
/// The JSON written and read by hand (the machines file, the agent's protocol): every field of the records goes
/// through, filled by reflection, so that a field added to a record and forgotten in its JSON fails here.
/// </summary>
[Trait("Category", "Unit")]
public sealed class JsonFieldsTests
{
    [Fact]
    public void A_machine_with_every_field_set_round_trips()
    {
        var machine = Filled<Machine>();
        AssertSame(machine, MachinesFile.DeserializeOne(MachinesFile.SerializeOne(machine)));
        var network = new PrivateNetwork("nsb-0a1b2c", "10.213.7.0/24", Outbound: true);
        var json = MachinesFile.Serialize([machine, machine with { Name = "second" }], NetworkMode.Private, network);
        Assert.Equal([machine.Name, "second"], MachinesFile.Deserialize(json).Select(m => m.Name));
        AssertSame(machine, MachinesFile.Deserialize(json)[0]);
        Assert.Equal((NetworkMode.Private, network), MachinesFile.DeserializeNetwork(json));
        // A machine record (the serializer's, with the machine through its converter) keeps every field too.
        var record = new MachineRecord(machine, 7, 8) { Format = MachineRecord.CurrentFormat, UpProject = "/p.csproj" };
        AssertSame(machine, JsonSerializer.Deserialize<MachineRecord>(JsonSerializer.Serialize(record, StateJson.SerializerOptions), StateJson.SerializerOptions)!.Machine);
    }

    [Fact]
    public void A_machines_file_the_serializer_wrote_still_reads()
    {
        // As the serializer wrote it before it was written by hand: a build of an earlier version may have left one.
        const string json = """
            {
              "machines": [
                {
                  "logicalName": "server", "name": "nspawn-server-db4f92f6", "image": "bookworm", "imageDir": "/c/bookworm",
                  "leaderPid": 10085, "leaderStartTime": 5696665, "nspawnPid": 10081, "nspawnStartTime": 5696662,
                  "snapshot": "/c/.#machine.bookworm818ee950eab0b736", "cgroups": [ "/sys/fs/cgroup/unified/nspawn-server-db4f92f6" ],
                  "stopTimeout": "00:00:15", "bootTimeout": "1.00:01:00.5000000", "writableBinds": [ "/p/obj/shared" ],
                  "started": "2026-12-06T18:47:32.4586501Z", "keepLogs": 1, "keepOnFailure": false, "uidShift": 1880948736,
                  "address": null, "someFieldOfLater": { "a": [1, 2] }
                }
              ],
              "networkMode": "Host"
            }
            """;
        var m = Assert.Single(MachinesFile.Deserialize(json));
        Assert.Equal(("server", 10085, 5696665UL, 1880948736U), (m.LogicalName, m.LeaderPid, m.LeaderStartTime, m.UidShift));
        Assert.Equal((TimeSpan.FromSeconds(15), new TimeSpan(1, 0, 1, 0, 500)), (m.StopTimeout, m.BootTimeout));
        Assert.Equal(new DateTime(2026, 12, 6, 18, 47, 32, DateTimeKind.Utc).AddTicks(4586501), m.Started);
        Assert.Equal((KeepLogs.Always, (string?)null, (string?)null), (m.KeepLogs, m.Address, m.Unit));
        Assert.Equal(["/p/obj/shared"], m.WritableBinds);
        Assert.Equal((NetworkMode.Host, (PrivateNetwork?)null), MachinesFile.DeserializeNetwork(json));
    }

    [Fact]
    public void The_agents_request_and_reply_with_every_field_set_round_trip()
    {
        var request = Filled<AgentRequest>();
        AssertSame(request, AgentRequest.FromJson(request.ToJson()));
        var reply = Filled<AgentReply>();
        AssertSame(reply, AgentReply.FromJson(reply.ToJson()));
        // Nulls are left out, as the serializer left them out; what a side does not know it skips.
        Assert.Equal("""{"Op":"ping","HasStdin":false,"Mode":0}""", Encoding.UTF8.GetString(new AgentRequest(AgentRequest.Ping).ToJson()));
        Assert.Equal(3, AgentReply.FromJson("""{"Later":{"x":[null,{}]},"ExitCode":3,"Error":null}"""u8).ExitCode);
    }

    [Theory]
    [InlineData("""{"ExitCode":"3"}""")]
    [InlineData("""{"ExitCode":3.5}""")]
    [InlineData("""{"Ok":1}""")]
    [InlineData("""{"Error":["a"]}""")]
    [InlineData("""{"ExitCode":3""")]
    [InlineData("""[{"Ok":true}]""")]
    [InlineData("")]
    public void A_reply_of_the_wrong_shape_from_the_guest_is_a_JsonException(string json) =>
        Assert.ThrowsAny<JsonException>(() => AgentReply.FromJson(Encoding.UTF8.GetBytes(json)));

    [Theory]
    [InlineData("""{"Command":["true"]}""")]
    [InlineData("""{"Op":"exec","Command":["true",1]}""")]
    [InlineData("""{"Op":"exec","Environment":{"A":null}}""")]
    [InlineData("""{"Op":"exec","TimeoutSeconds":"5"}""")]
    public void A_request_of_the_wrong_shape_is_a_JsonException(string json) =>
        Assert.ThrowsAny<JsonException>(() => AgentRequest.FromJson(Encoding.UTF8.GetBytes(json)));

    [Theory]
    [InlineData("""{"machines":[{"leaderPid":"10"}]}""")]
    [InlineData("""{"machines":[{"stopTimeout":"15 seconds"}]}""")]
    [InlineData("""{"machines":[{"keepLogs":7}]}""")]
    [InlineData("""{"machines":[],"networkMode":"Bridge"}""")]
    [InlineData("""{"machines":[],"network":{"bridge":"nsb-1"}}""")]
    public void A_machines_file_of_the_wrong_shape_is_a_JsonException(string json) =>
        Assert.ThrowsAny<JsonException>(() => MachinesFile.Deserialize(json));

    /// <summary>A record with every constructor argument and settable property given a value of its own, none a default.</summary>
    private static T Filled<T>()
    {
        var n = 0;
        var ctor = typeof(T).GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
        var value = (T)ctor.Invoke(ctor.GetParameters().Select(p => Sample(p.ParameterType, ++n)).ToArray());
        foreach (var property in typeof(T).GetProperties().Where(p => p.SetMethod is { IsPublic: true } && ctor.GetParameters().All(a => a.Name != p.Name)))
            property.SetValue(value, Sample(property.PropertyType, ++n));
        return value;
    }

    private static object Sample(Type type, int n)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        if (t == typeof(string)) return $"v{n} é\"\\<+>";
        if (t == typeof(int)) return 100 + n;
        if (t == typeof(uint)) return 3_000_000_000U + (uint)n;
        if (t == typeof(ulong)) return 10_000_000_000UL + (ulong)n;
        if (t == typeof(bool)) return true;
        if (t == typeof(double)) return n + 0.25;
        if (t == typeof(TimeSpan)) return new TimeSpan(1, 2, 3, 4, 5) + TimeSpan.FromTicks(n);
        if (t == typeof(DateTime)) return new DateTime(2026, 12, 6, 18, 47, 32, DateTimeKind.Utc).AddTicks(n);
        if (t.IsEnum) return Enum.GetValues(t).GetValue(Enum.GetValues(t).Length - 1)!;
        if (t == typeof(IReadOnlyList<string>)) return new List<string> { $"a{n}", "b é\"" };
        if (t == typeof(IReadOnlyDictionary<string, string>)) return new Dictionary<string, string> { [$"K{n}"] = "x=y ü", ["PATH"] = "/bin" };
        throw new NotSupportedException($"No sample for {type}: add one, and the field to the record's JSON.");
    }

    /// <summary>Every readable property equal, lists and maps by their items.</summary>
    private static void AssertSame<T>(T expected, T actual)
    {
        foreach (var property in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0))
        {
            var (e, a) = (property.GetValue(expected), property.GetValue(actual));
            if (e is IDictionary<string, string> map)
                Assert.Equal(map.OrderBy(kv => kv.Key), ((IDictionary<string, string>)a!).OrderBy(kv => kv.Key));
            else if (e is IEnumerable items and not string)
                Assert.Equal(items.Cast<object>(), ((IEnumerable)a!).Cast<object>());
            else
                Assert.True(Equals(e, a), $"{property.Name}: expected {e}, read {a}");
        }
    }
}
