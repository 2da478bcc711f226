// Public (the tests see it): in the tests' namespace, though Core defines it for the tasks too.
namespace Nspawn.Testing;

/// <summary>How a machine is networked (NspawnNetwork, StartOptions.Network).</summary>
public enum NetworkMode
{
    /// <summary>The host's own network, shared (nspawn's default).</summary>
    Host,
    /// <summary>A network of the build's own: a bridge, an address per machine, names; no way out unless NspawnNetworkOutbound.</summary>
    Private,
    /// <summary>Loopback only.</summary>
    None,
}
