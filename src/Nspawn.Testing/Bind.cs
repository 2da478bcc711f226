namespace Nspawn.Testing;

/// <summary>
/// A host folder or file in a test's own machine (StartOptions.Binds), like an NspawnBind item: an absolute
/// host path that exists, at <see cref="Destination"/> (by default the same path), read-only unless
/// <see cref="ReadOnly"/> is false. What the machine's root writes in a writable folder of a user's is that user's.
/// </summary>
public sealed record Bind(string Source, string? Destination = null, bool ReadOnly = true);
