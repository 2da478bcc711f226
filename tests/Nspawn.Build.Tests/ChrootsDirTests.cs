namespace Nspawn.Build.Tests;

/// <summary>Where test_chroots is when NspawnChrootsDir is not set, as the targets evaluate it: no root, no machine.</summary>
[Trait("Category", "Unit")]
public sealed class ChrootsDirTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-chrootsdir-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A test_chroots folder marked as ours (its CACHEDIR.TAG), as the first run leaves it.</summary>
    private string Marked(string parent)
    {
        var chroots = Directory.CreateDirectory(Path.Combine(parent, "test_chroots")).FullName;
        File.WriteAllText(Path.Combine(chroots, "CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n");
        return chroots;
    }

    [Fact]
    public async Task The_nearest_marked_test_chroots_at_or_above_the_project_else_the_solutions_else_the_projects()
    {
        // Above: the nearest marked one wins over a higher one, and an unmarked folder of that name is not taken.
        var repo = Path.Combine(_dir, "above", "repo");
        Marked(Path.Combine(_dir, "above"));
        var nearest = Marked(repo);
        Directory.CreateDirectory(Path.Combine(repo, "src", "test_chroots"));
        var deep = new TargetsProject(Path.Combine(repo, "src", "app"));
        // At the project itself.
        var at = Path.Combine(_dir, "at", "app");
        var own = Marked(at);
        var atProject = new TargetsProject(at);
        // None marked: next to the solution when there is one, else next to the project.
        var plain = new TargetsProject(Path.Combine(_dir, "plain", "src", "app"));
        var solution = Path.Combine(_dir, "plain") + "/";

        var found = await Task.WhenAll(
            deep.PropertyAsync("NspawnChrootsDir"),
            atProject.PropertyAsync("NspawnChrootsDir"),
            plain.PropertyAsync("NspawnChrootsDir", $"-p:SolutionDir={solution}"),
            plain.PropertyAsync("NspawnChrootsDir"));
        Assert.Equal([nearest, own, Path.Combine(_dir, "plain", "test_chroots"), Path.Combine(_dir, "plain", "src", "app", "test_chroots")], found);
    }
}
