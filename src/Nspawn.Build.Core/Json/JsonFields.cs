using System.Globalization;
using System.Text.Json;

namespace Nspawn.Build;

/// <summary>
/// Our records' JSON read and written by hand, through System.Text.Json's reader and writer. Its serializer's
/// metadata JIT-compiles some forty methods for each value type a record holds on a process's first use: 55 ms for
/// the machines file and 35 ms for the agent's protocol, which a test paid on its first call to a machine.
/// Reading: <see cref="Object"/>, then <see cref="Next"/> for each field with the reader on its value; a value
/// of the wrong kind is a <see cref="JsonException"/>, as the serializer's would be; unknown fields are skipped.
/// </summary>
internal static class JsonFields
{
    /// <summary>A reader on the start of the one object <paramref name="json"/> holds.</summary>
    public static Utf8JsonReader Object(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            throw new JsonException("Expected a JSON object.");
        return reader;
    }

    /// <summary>The next field's name, the reader then on its value; null at the object's end.</summary>
    public static string? Next(ref Utf8JsonReader reader)
    {
        Read(ref reader);
        if (reader.TokenType == JsonTokenType.EndObject)
            return null;
        var name = reader.GetString()!;
        Read(ref reader);
        return name;
    }

    /// <summary>Past a value the caller does not read (an object or array whole).</summary>
    public static void Skip(ref Utf8JsonReader reader) => reader.Skip();

    /// <summary>Past a field the reader does not know (one of a later version), <paramref name="value"/> unchanged.</summary>
    public static T Skipped<T>(ref Utf8JsonReader reader, T value) where T : class
    {
        reader.Skip();
        return value;
    }

    public static string? String(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.Null => null,
        JsonTokenType.String => reader.GetString(),
        _ => throw Wrong(ref reader, "a string"),
    };

    public static string RequiredString(ref Utf8JsonReader reader) => String(ref reader) ?? throw Wrong(ref reader, "a string");

    public static bool Bool(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.True => true,
        JsonTokenType.False => false,
        _ => throw Wrong(ref reader, "true or false"),
    };

    public static int Int(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var value) ? value : throw Wrong(ref reader, "a whole number");

    public static uint? UInt(ref Utf8JsonReader reader) => reader.TokenType == JsonTokenType.Null ? null
        : reader.TokenType == JsonTokenType.Number && reader.TryGetUInt32(out var value) ? value : throw Wrong(ref reader, "a whole number");

    public static ulong ULong(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.Number && reader.TryGetUInt64(out var value) ? value : throw Wrong(ref reader, "a whole number");

    public static double? Double(ref Utf8JsonReader reader) => reader.TokenType == JsonTokenType.Null ? null
        : reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var value) ? value : throw Wrong(ref reader, "a number");

    /// <summary>As the serializer writes one: "d.hh:mm:ss.fffffff".</summary>
    public static TimeSpan TimeSpan(ref Utf8JsonReader reader) =>
        System.TimeSpan.TryParseExact(RequiredString(ref reader), "c", CultureInfo.InvariantCulture, out var value) ? value : throw Wrong(ref reader, "a time span");

    public static DateTime DateTime(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.String && reader.TryGetDateTime(out var value) ? value : throw Wrong(ref reader, "an ISO 8601 time");

    public static List<string>? Strings(ref Utf8JsonReader reader)
    {
        if (reader.TokenType == JsonTokenType.Null)
            return null;
        if (reader.TokenType != JsonTokenType.StartArray)
            throw Wrong(ref reader, "an array of strings");
        var list = new List<string>();
        while (Read(ref reader) != JsonTokenType.EndArray)
            list.Add(RequiredString(ref reader));
        return list;
    }

    public static Dictionary<string, string>? StringMap(ref Utf8JsonReader reader)
    {
        if (reader.TokenType == JsonTokenType.Null)
            return null;
        if (reader.TokenType != JsonTokenType.StartObject)
            throw Wrong(ref reader, "an object of strings");
        var map = new Dictionary<string, string>();
        while (Next(ref reader) is { } key)
            map[key] = RequiredString(ref reader);
        return map;
    }

    public static void WriteStrings(Utf8JsonWriter writer, string name, IEnumerable<string>? values)
    {
        if (values is null)
            return;
        writer.WriteStartArray(name);
        foreach (var value in values)
            writer.WriteStringValue(value);
        writer.WriteEndArray();
    }

    public static void WriteStringMap(Utf8JsonWriter writer, string name, IReadOnlyDictionary<string, string>? map)
    {
        if (map is null)
            return;
        writer.WriteStartObject(name);
        foreach (var (key, value) in map)
            writer.WriteString(key, value);
        writer.WriteEndObject();
    }

    /// <summary>Writes the string only when there is one, as the serializer does with WhenWritingNull.</summary>
    public static void WriteIf(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is not null)
            writer.WriteString(name, value);
    }

    /// <summary>One JSON document written to bytes.</summary>
    public static byte[] ToBytes(Action<Utf8JsonWriter> write, bool indented = false)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = indented }))
            write(writer);
        return buffer.WrittenSpan.ToArray();
    }

    private static JsonTokenType Read(ref Utf8JsonReader reader) =>
        reader.Read() ? reader.TokenType : throw new JsonException("The JSON ends too soon.");

    private static JsonException Wrong(ref Utf8JsonReader reader, string expected) =>
        new($"Expected {expected} at byte {reader.TokenStartIndex.ToString(CultureInfo.InvariantCulture)}, found {reader.TokenType}.");
}
