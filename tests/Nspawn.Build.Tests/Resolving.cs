using Microsoft.Build.Utilities;
using Nspawn.Build.Tasks;

namespace Nspawn.Build.Tests;

/// <summary>ResolveNspawnSettings on a fake build engine, with no host checks, as the unit tests of settings run it.</summary>
internal static class Resolving
{
    public static (ResolveNspawnSettings Task, FakeBuildEngine Engine) Resolve(Action<ResolveNspawnSettings>? set = null)
    {
        var engine = new FakeBuildEngine();
        var task = new ResolveNspawnSettings { BuildEngine = engine, ChrootsDir = "/srv/test_chroots", EphemeralMode = "snapshot", CheckHost = false, BaseDir = "/work/project" };
        set?.Invoke(task);
        return (task, engine);
    }

    public static TaskItem Item(string name, params (string Name, string Value)[] metadata)
    {
        var item = new TaskItem(name);
        foreach (var (key, value) in metadata)
            item.SetMetadata(key, value);
        return item;
    }
}
