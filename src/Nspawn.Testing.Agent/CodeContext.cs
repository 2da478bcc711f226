using System.Reflection;
using System.Runtime.Loader;

namespace Nspawn.Testing.Agent;

/// <summary>A test's assembly and its dependencies (its .deps.json), collectible: a rebuilt assembly gets a new context.</summary>
internal sealed class CodeContext(string assemblyPath) : AssemblyLoadContext("nspawn-invoke:" + assemblyPath, isCollectible: true)
{
    private readonly AssemblyDependencyResolver _resolver = new(assemblyPath);

    protected override Assembly? Load(AssemblyName name) =>
        _resolver.ResolveAssemblyToPath(name) is { } path ? LoadFromAssemblyPath(path) : null;

    protected override nint LoadUnmanagedDll(string name) =>
        _resolver.ResolveUnmanagedDllToPath(name) is { } path ? LoadUnmanagedDllFromPath(path) : 0;
}
