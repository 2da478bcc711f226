using Microsoft.Testing.Platform.Builder;
using Microsoft.Testing.Platform.Extensions;

namespace Nspawn.Testing.Platform;

/// <summary>
/// Registers the package's extension with a Microsoft.Testing.Platform test application: the entry point that
/// Microsoft.Testing.Platform.MSBuild generates calls it for the package's TestingPlatformBuilderHook item.
/// </summary>
public static class TestingPlatformBuilderHook
{
    public static void AddExtensions(ITestApplicationBuilder builder, string[] arguments)
    {
        // One instance for both roles: it sets the variables for the machines it booted, and stops them when the test host exits.
        var machines = new CompositeExtensionFactory<MachinesExtension>(services => new MachinesExtension(services));
        builder.TestHostControllers.AddEnvironmentVariableProvider(machines);
        builder.TestHostControllers.AddProcessLifetimeHandler(machines);
    }
}
