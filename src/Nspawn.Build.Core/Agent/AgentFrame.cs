using System.Buffers.Binary;

namespace Nspawn.Build.Agent;

/// <summary>
/// The agent's wire format, shared by the host and the agent (a linked file): a frame is a 4-byte little-endian
/// length, a kind byte and its payload. One request per connection: a JSON request, then data both ways, then
/// the agent's JSON reply. Closing the connection early kills what the request started.
/// </summary>
internal static class AgentFrame
{
    public const byte Json = (byte)'J';
    public const byte Stdout = (byte)'O';
    public const byte Stderr = (byte)'E';
    public const byte Stdin = (byte)'I';
    public const byte StdinEnd = (byte)'C';
    public const byte Kill = (byte)'K';

    /// <summary>The largest frame either side accepts: the peer is not trusted to send sane sizes.</summary>
    public const int MaxPayload = 16 << 20;

    /// <summary>Reads one frame; null at the end of the stream.</summary>
    public static async Task<(byte Kind, byte[] Payload)?> ReadAsync(Stream stream, CancellationToken cancellationToken)
    {
        var header = new byte[5];
        if (!await FillAsync(stream, header, cancellationToken))
            return null;
        var length = BinaryPrimitives.ReadInt32LittleEndian(header);
        if (length is < 0 or > MaxPayload)
            throw new InvalidDataException($"A frame of {length} bytes: more than the {MaxPayload} allowed.");
        var payload = new byte[length];
        if (!await FillAsync(stream, payload, cancellationToken))
            throw new EndOfStreamException("The connection ended inside a frame.");
        return (header[4], payload);
    }

    /// <summary>Writes one frame in one write (callers that share a stream hold a lock around it).</summary>
    public static async Task WriteAsync(Stream stream, byte kind, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var frame = new byte[5 + payload.Length];
        BinaryPrimitives.WriteInt32LittleEndian(frame, payload.Length);
        frame[4] = kind;
        payload.CopyTo(frame.AsMemory(5));
        await stream.WriteAsync(frame, cancellationToken);
    }

    private static async Task<bool> FillAsync(Stream stream, byte[] buffer, CancellationToken cancellationToken)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(read), cancellationToken);
            if (n == 0)
                return read == 0 && buffer.Length > 0 ? false : throw new EndOfStreamException("The connection ended inside a frame.");
            read += n;
        }
        return true;
    }
}
