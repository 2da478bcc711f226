namespace Nspawn.Build.Tests;

/// <summary>The repository this test or benchmark runs from, and its image.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();
    public static string Sample => Path.Combine(Root, "tests/Sample");
    /// <summary>The samples of the other frameworks and modes (tests/Samples/NAME).</summary>
    public static string Samples => Path.Combine(Root, "tests/Samples");
    /// <summary>A test project of every stack users have (tests/Stacks/NAME).</summary>
    public static string Stacks => Path.Combine(Root, "tests/Stacks");
    public static string ChrootsDir => Path.Combine(Root, "test_chroots");
    public static string ImageDir => Path.Combine(ChrootsDir, "bookworm");

    private static string FindRoot()
    {
        for (var dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
            if (File.Exists(Path.Combine(dir, "Nspawn.Build.sln")))
                return dir;
        throw new InvalidOperationException("Nspawn.Build.sln not found above " + AppContext.BaseDirectory);
    }
}
