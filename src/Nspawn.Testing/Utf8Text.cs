using System.Text;

namespace Nspawn.Testing;

/// <summary>
/// A command's output kept as text, UTF-8 decoded chunk by chunk: a character split between two frames comes out
/// whole, and invalid bytes become U+FFFD, as a StreamReader over the same bytes gives them.
/// </summary>
internal sealed class Utf8Text
{
    private readonly Decoder _decoder = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetDecoder();
    private readonly StringBuilder _text = new();

    public void Add(byte[] data) => Decode(data, flush: false);

    /// <summary>All the text, once the output has ended (what a character left unfinished becomes, too).</summary>
    public string Finish()
    {
        Decode([], flush: true);
        return _text.ToString();
    }

    private void Decode(ReadOnlySpan<byte> data, bool flush)
    {
        var chars = new char[_decoder.GetCharCount(data, flush)];
        _text.Append(chars, 0, _decoder.GetChars(data, chars, flush));
    }
}
