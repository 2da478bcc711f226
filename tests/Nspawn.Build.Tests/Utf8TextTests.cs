using System.Text;
using Nspawn.Testing;
using Xunit;

namespace Nspawn.Build.Tests;

/// <summary>ExecAsync's text from the agent's frames: a character split between two frames, and bytes that are not UTF-8.</summary>
[Trait("Category", "Unit")]
public sealed class Utf8TextTests
{
    [Fact]
    public void A_character_split_between_frames_comes_out_whole()
    {
        var bytes = Encoding.UTF8.GetBytes("grüße 😀\n");
        var text = new Utf8Text();
        // A frame a byte: ü and ß take two, 😀 four.
        foreach (var b in bytes)
            text.Add([b]);
        Assert.Equal("grüße 😀\n", text.Finish());
    }

    [Fact]
    public void Bytes_that_are_not_utf8_read_as_a_stream_reader_reads_them()
    {
        byte[] bytes = [0x61, 0xff, 0x62, 0xe2, 0x82];
        var text = new Utf8Text();
        text.Add(bytes[..2]);
        text.Add(bytes[2..]);
        Assert.Equal(new StreamReader(new MemoryStream(bytes), new UTF8Encoding(false)).ReadToEnd(), text.Finish());
    }
}
