using System.Text.Json.Serialization;

namespace Nspawn.Build;

/// <summary>
/// JSON metadata made at compile time for what the tasks hand each other and keep in files (<see cref="MachinesFile.JsonOptions"/>):
/// a build's first use of each type then costs no reflection (20 ms for ImageSpec alone). A type not listed here falls back to reflection.
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ImageSpec))]
[JsonSerializable(typeof(List<BindMount>))]
[JsonSerializable(typeof(Machine))]
[JsonSerializable(typeof(MachinesFile.Document))]
[JsonSerializable(typeof(MachineRecord))]
[JsonSerializable(typeof(NetworkRecord))]
internal sealed partial class StateJson : JsonSerializerContext;
