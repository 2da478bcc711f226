using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nspawn.Build;

/// <summary>
/// JSON metadata made at compile time for what the tasks hand each other and keep in files (<see cref="SerializerOptions"/>):
/// a build's first use of each type then costs no reflection (20 ms for ImageSpec alone). A type not listed here falls back to reflection.
/// The machines file and the agent's protocol are read and written by hand (<see cref="JsonFields"/>).
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ImageSpec))]
[JsonSerializable(typeof(List<BindMount>))]
[JsonSerializable(typeof(MachineRecord))]
[JsonSerializable(typeof(NetworkRecord))]
internal sealed partial class StateJson : JsonSerializerContext
{
    public static JsonSerializerOptions SerializerOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = System.Text.Json.Serialization.Metadata.JsonTypeInfoResolver.Combine(Default, new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver()),
    };
}
