using System.Text.RegularExpressions;
using Nspawn.Build.Tasks;
using static Nspawn.Build.Tests.Resolving;

namespace Nspawn.Build.Tests;

/// <summary>
/// The README's CI snippets (Images between CI runs) against the code: each runs a target and sets a property that
/// the targets have, and caches the very folder the build exports the images to. No CI runs them here.
/// </summary>
[Trait("Category", "Unit")]
public sealed partial class CiSnippetTests
{
    private static string Targets => string.Concat(Directory.GetFiles(Path.Combine(Repo.Root, "build"), "*.targets").Select(File.ReadAllText));

    /// <summary>The lines of one CI system's snippet: from its '# NAME' comment to the next such comment.</summary>
    private static string Snippet(string ci)
    {
        var yaml = Assert.Single(Markdown.CodeBlocks(Markdown.Section(Readme.Lines, "Images between CI runs"), "yaml")).Split('\n');
        var start = Array.IndexOf(yaml, "# " + ci);
        Assert.True(start >= 0, $"no '# {ci}' snippet");
        return string.Join('\n', yaml.Skip(start + 1).TakeWhile(l => !l.StartsWith("# ", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("GitHub Actions", "$PWD", "/home/runner/work/app/app")]
    [InlineData("GitLab CI", "$CI_PROJECT_DIR", "/builds/group/app")]
    public void Each_CI_snippet_caches_the_folder_the_build_exports_its_images_to(string ci, string variable, string checkout)
    {
        var snippet = Snippet(ci);
        var build = BuildCommand().Match(snippet);
        Assert.True(build.Success, $"no dotnet build in the {ci} snippet:\n{snippet}");
        var target = build.Groups["target"].Value;
        Assert.Contains($"<Target Name=\"{target}\"", Targets);
        var (property, value) = (build.Groups["property"].Value, build.Groups["value"].Value);
        Assert.Equal("NspawnImageCacheDir", property);
        Assert.Contains($"ImageCacheDir=\"$({property})\"", Targets);

        // The folder the CI system keeps, in the checkout the job runs in.
        var cached = CachePath().Match(snippet);
        Assert.True(cached.Success, $"no cache path in the {ci} snippet:\n{snippet}");
        var kept = Path.GetFullPath(Path.Combine(checkout, cached.Groups[1].Value)).TrimEnd('/');
        var (task, engine) = Resolve(t => t.ImageCacheDir = value.Replace(variable, checkout));
        Assert.True(task.Execute(), string.Join('\n', engine.ErrorLines));
        var cache = ResolvedItems.ToStore(task.Store).Builder().Cache;
        Assert.NotNull(cache);
        Assert.Equal(kept, Path.GetDirectoryName(cache.FileOf(ResolvedItems.ToImage(Assert.Single(task.Images)))));
    }

    [Fact]
    public void The_GitHub_cache_key_follows_the_files_that_define_the_images()
    {
        var snippet = Snippet("GitHub Actions");
        Assert.Contains("uses: actions/cache@", snippet);
        // The projects (properties and image definitions) and the setup scripts: a change makes a new key, so a new cache.
        Assert.Matches(@"key: .*hashFiles\('\*\*/\*\.csproj', 'images/\*\*'\)", snippet);
    }

    [GeneratedRegex(@"dotnet build -t:(?<target>\w+) -p:(?<property>\w+)=(?<value>\S+)")]
    private static partial Regex BuildCommand();

    [GeneratedRegex(@"paths?: \[?([^\]\s]+)")]
    private static partial Regex CachePath();
}
