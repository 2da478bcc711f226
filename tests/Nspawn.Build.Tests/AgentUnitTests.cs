using System.Buffers.Binary;
using Nspawn.Build.Agent;

namespace Nspawn.Build.Tests;

/// <summary>The agent's protocol and what InvokeAsync sends, without a machine.</summary>
[Trait("Category", "Unit")]
public sealed class AgentUnitTests
{
    private static string CodeDir => AppContext.BaseDirectory;

    [Fact]
    public async Task Frames_go_through_and_an_oversized_one_is_refused()
    {
        using var stream = new MemoryStream();
        await AgentFrame.WriteAsync(stream, AgentFrame.Stdout, new byte[] { 1, 2, 3 }, CancellationToken.None);
        await AgentFrame.WriteAsync(stream, AgentFrame.StdinEnd, ReadOnlyMemory<byte>.Empty, CancellationToken.None);
        stream.Position = 0;
        var first = await AgentFrame.ReadAsync(stream, CancellationToken.None);
        Assert.Equal(AgentFrame.Stdout, first!.Value.Kind);
        Assert.Equal([1, 2, 3], first.Value.Payload);
        Assert.Equal(AgentFrame.StdinEnd, (await AgentFrame.ReadAsync(stream, CancellationToken.None))!.Value.Kind);
        Assert.Null(await AgentFrame.ReadAsync(stream, CancellationToken.None));

        // A guest that claims a huge frame gets no huge buffer.
        var header = new byte[5];
        BinaryPrimitives.WriteInt32LittleEndian(header, int.MaxValue);
        await Assert.ThrowsAsync<InvalidDataException>(() => AgentFrame.ReadAsync(new MemoryStream(header), CancellationToken.None));
        // Nor does a stream that ends inside a frame pass for a whole one.
        BinaryPrimitives.WriteInt32LittleEndian(header, 10);
        await Assert.ThrowsAsync<EndOfStreamException>(() => AgentFrame.ReadAsync(new MemoryStream([.. header, 1, 2]), CancellationToken.None));
    }

    [Fact]
    public void A_call_is_sent_with_its_arguments_evaluated_on_the_host()
    {
        var config = new GuestCode.Config("web", 80);
        var request = InvokeCall.From((System.Linq.Expressions.Expression<Func<GuestCode.Config>>)(() => GuestCode.Echo(config)), CodeDir);
        Assert.Equal(typeof(GuestCode).Assembly.Location, request.Assembly);
        Assert.Equal("Nspawn.Build.Tests.GuestCode", request.Type);
        Assert.Equal("Echo", request.Method);
        Assert.Equal(["{\"Name\":\"web\",\"Port\":80}"], request.Arguments!);
        Assert.Equal([typeof(GuestCode.Config).AssemblyQualifiedName!], request.ParameterTypes!);
    }

    [Fact]
    public void What_cannot_be_sent_is_refused_before_anything_is_sent()
    {
        Assert.Contains("instance method", Assert.Throws<ArgumentException>(() => InvokeCall.From((System.Linq.Expressions.Expression<Func<string>>)(() => "x".Trim()), CodeDir)).Message);
        Assert.Contains("single call", Assert.Throws<ArgumentException>(() => InvokeCall.From((System.Linq.Expressions.Expression<Func<int>>)(() => GuestCode.Add(1, 2) + 1), CodeDir)).Message);
        Assert.Contains("cannot be sent", Assert.Throws<NotSupportedException>(() => InvokeCall.From((System.Linq.Expressions.Expression<Func<int>>)(() => GuestCode.Call(() => 1)), CodeDir)).Message);
        // A method outside the tests' output folder is not in the machine.
        Assert.Contains("outside the tests' output folder", Assert.Throws<NotSupportedException>(() => InvokeCall.From((System.Linq.Expressions.Expression<Func<int>>)(() => GuestCode.Add(1, 2)), "/nowhere")).Message);
    }
}
