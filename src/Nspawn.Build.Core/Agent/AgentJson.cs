using System.Text.Json.Serialization;

namespace Nspawn.Build.Agent;

/// <summary>Generated serializers for the protocol: no reflection at the agent's start, where every millisecond counts.</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AgentRequest))]
[JsonSerializable(typeof(AgentReply))]
internal sealed partial class AgentJson : JsonSerializerContext
{
}
