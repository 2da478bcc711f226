using Xunit.Abstractions;

namespace Nspawn.Build.Tests;

/// <summary>
/// docs/claims.md maps each claim of the README to the test that fails when the claim breaks. These hold the
/// table itself: every test it names exists, every section of the README has a row, and a row with no test says
/// that one is missing.
/// </summary>
[Trait("Category", "Unit")]
public sealed class ClaimsTableTests(ITestOutputHelper output)
{
    private static readonly IReadOnlyList<ClaimRow> Rows = ClaimRow.ReadAll();

    [Fact]
    public void The_table_has_rows() => Assert.True(Rows.Count >= 50, $"{ClaimRow.FilePath} has {Rows.Count} rows");

    [Fact]
    public void Every_named_test_exists()
    {
        var unknown = Rows.Where(r => r.HasTest).SelectMany(r => r.Tests.Where(t => !TestIndex.All.Contains(t)).Select(t => $"{r.Section}: {t}")).ToList();
        Assert.True(unknown.Count == 0, "docs/claims.md names tests that do not exist:\n" + string.Join('\n', unknown));
    }

    [Fact]
    public void Every_README_section_has_a_row()
    {
        var sections = Rows.Select(r => r.Section).ToHashSet();
        var missing = Readme.Headings.Where(h => h.Level is 2 or 3 && !sections.Contains(Markdown.Plain(h.Text))).Select(h => h.Text).ToList();
        Assert.True(missing.Count == 0, "README sections without a row in docs/claims.md:\n" + string.Join('\n', missing));
    }

    [Fact]
    public void Every_row_names_a_README_section()
    {
        var headings = Readme.Headings.Select(h => Markdown.Plain(h.Text)).ToHashSet();
        var stale = Rows.Select(r => r.Section).Where(s => !headings.Contains(s)).Distinct().ToList();
        Assert.True(stale.Count == 0, "docs/claims.md names sections the README does not have:\n" + string.Join('\n', stale));
    }

    [Fact]
    public void A_row_without_a_test_says_it_is_missing()
    {
        var untested = Rows.Where(r => !r.HasTest).ToList();
        foreach (var row in untested)
            output.WriteLine($"no test yet: {row.Section}: {row.Claim}");
        output.WriteLine($"{untested.Count} of {Rows.Count} claims have no test yet.");
        var unmarked = untested.Where(r => r.Tests.Count != 1 || !r.Notes.Contains("missing", StringComparison.OrdinalIgnoreCase)).Select(r => $"{r.Section}: {r.Claim}").ToList();
        Assert.True(unmarked.Count == 0, "Rows without a test must say 'none' in the test column and 'missing' in the notes:\n" + string.Join('\n', unmarked));
    }

    [Fact]
    public void The_index_finds_the_tests_of_this_assembly_and_of_the_sample()
    {
        Assert.Contains($"{nameof(ClaimsTableTests)}.{nameof(Every_named_test_exists)}", TestIndex.All);
        Assert.Contains("ValidateTests.Plain_names_pass", TestIndex.All);
        Assert.Contains("MachineTests.The_machine_runs_Debian", TestIndex.All);
        Assert.DoesNotContain("MachineTests.Plain_names_pass", TestIndex.All);
        const string source = """
            // a class in a comment is no class
            public class First
            {
                [Fact] public void One() { }
                public void Helper() { }
            }
            [Collection("x")]
            public sealed class Second(ITestOutputHelper output)
            {
                [Theory]
                [InlineData(1)]
                public async Task Two(int n) { }
            }
            """;
        Assert.Equal(["First.One", "Second.Two"], TestIndex.InSource(source));
    }
}
