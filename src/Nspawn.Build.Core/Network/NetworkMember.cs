namespace Nspawn.Build;

/// <summary>A machine on a private network: its unique name, the name others reach it by, and its host number.</summary>
internal sealed record NetworkMember(string Machine, string LogicalName, uint Host);
