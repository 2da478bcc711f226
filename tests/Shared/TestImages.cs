namespace Nspawn.Build.Tests;

/// <summary>Image specs as a project would resolve them from its properties.</summary>
public static class TestImages
{
    internal static ImageSpec Spec(string name, string suite, string mirror, string variant, string include) =>
        SettingsResolver.Resolve(new ProjectSettings
        {
            ChrootsDir = "/c", EphemeralMode = "snapshot", Image = name, Suite = suite, Mirror = mirror, Variant = variant, Include = include,
        }).Images[0];
}
