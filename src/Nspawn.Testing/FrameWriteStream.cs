using Nspawn.Build.Agent;

namespace Nspawn.Testing;

/// <summary>A write-only stream that sends what is written as standard input frames to the agent.</summary>
internal sealed class FrameWriteStream(AgentConnection connection) : Stream
{
    private const int Chunk = 64 * 1024;

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        for (var at = 0; at < buffer.Length; at += Chunk)
            await connection.SendAsync(AgentFrame.Stdin, buffer.Slice(at, Math.Min(Chunk, buffer.Length - at)), cancellationToken);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
