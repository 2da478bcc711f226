using System.Globalization;
using System.Text.RegularExpressions;

namespace Nspawn.Build.Tests;

/// <summary>The README's shape, as the project wants it: short, the start first, and its links good.</summary>
[Trait("Category", "Unit")]
public sealed partial class ReadmeTests
{
    [Fact]
    public void It_has_at_most_600_lines() => Assert.InRange(Readme.Lines.Count, 1, 600);

    [Fact]
    public void It_starts_with_the_two_commands_that_run_the_tests()
    {
        var top = string.Join('\n', Readme.Lines.Take(8));
        Assert.Contains("sudo tests/sample.sh", top);
        Assert.Contains("sudo tests/all.sh", top);
    }

    [Fact]
    public void Its_first_hundred_lines_show_the_reference_a_test_and_ContainerTest()
    {
        var first = string.Join('\n', Readme.Lines.Take(100));
        Assert.Contains("<PackageReference Include=\"Nspawn.Build\"", first);
        Assert.Contains("[Fact]", first);
        Assert.Contains("EphemeralMachine.FromEnvironment()", first);
        Assert.Contains("dotnet build -t:ContainerTest", first);
        // What it prints, in the words of the code's messages (MachineLauncher.Describe, StopOutcome).
        Assert.Matches(@"Started 'default' \(nspawn-default-[0-9a-f]{8}, unit nspawn-default-[0-9a-f]{8}\.service, image bookworm, leader PID \d+\) in \d+\.\d s\.", first);
        Assert.Matches(@"Stopped 'default' \(nspawn-default-[0-9a-f]{8}\) in \d+\.\d s\.", first);
    }

    [Fact]
    public void The_printed_start_and_stop_are_what_the_code_says()
    {
        // The messages format seconds in the build's culture; the README shows them as an English build prints them.
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        var machine = new Machine("default", "nspawn-default-1a2b3c4d", "bookworm", "/src/app.Tests/test_chroots/bookworm",
            4242, 0, 4240, 0, null, "nspawn-default-1a2b3c4d.service", []);
        var started = MachineLauncher.Describe([machine], TimeSpan.FromSeconds(0.4));
        var stopped = $"Stopped {new StopOutcome(machine, PoweredOff: true, TimeSpan.FromSeconds(0.2))}.";
        Assert.Contains(started, Readme.Lines.Select(l => l.Trim()));
        Assert.Contains(stopped, Readme.Lines.Select(l => l.Trim()));
    }

    [Fact]
    public void The_docs_hold_the_benchmark_and_the_architecture()
    {
        Assert.True(File.Exists(Path.Combine(Repo.Root, "docs", "benchmark.md")));
        Assert.True(File.Exists(Path.Combine(Repo.Root, "docs", "architecture.md")));
    }

    [Fact]
    public void Every_link_into_the_repository_leads_to_a_file_and_heading_that_exist()
    {
        var broken = new List<string>();
        foreach (var file in new[] { Readme.FilePath }.Concat(Directory.GetFiles(Path.Combine(Repo.Root, "docs"), "*.md")))
            foreach (Match link in LocalLink().Matches(File.ReadAllText(file)))
            {
                var (path, anchor) = (link.Groups[1].Value, link.Groups[2].Value);
                var target = path == "" ? file : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, path));
                if (!File.Exists(target))
                    broken.Add($"{Path.GetFileName(file)}: {link.Value} (no file)");
                else if (anchor != "" && !Markdown.Headings(File.ReadAllLines(target)).Any(h => Markdown.Anchor(h.Text) == anchor))
                    broken.Add($"{Path.GetFileName(file)}: {link.Value} (no such heading)");
            }
        Assert.True(broken.Count == 0, "Broken links:\n" + string.Join('\n', broken));
    }

    /// <summary>A Markdown link that is not a URL: a path (maybe empty) and an anchor (maybe empty).</summary>
    [GeneratedRegex(@"\]\((?!https?:)([^)#\s]*)(?:#([^)\s]*))?\)")]
    private static partial Regex LocalLink();
}
