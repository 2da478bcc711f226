// Public (the tests see it): in the tests' namespace, though Core defines it for the tasks too.
namespace Nspawn.Testing;

/// <summary>An expected failure with a stable code; tasks log it as <c>error NSPAWNnnnn: message</c>.</summary>
public sealed class NspawnException(string code, string message, Exception? inner = null) : Exception(message, inner)
{
    public string Code { get; } = code;
}
