namespace Nspawn.Build.Tests;

/// <summary>
/// One row of docs/claims.md: a README section, a claim it makes, and the tests that fail when the claim breaks
/// (<c>ClassName.MethodName</c>, comma-separated), or none, with a note saying the test is missing.
/// </summary>
public sealed record ClaimRow(string Section, string Claim, IReadOnlyList<string> Tests, string Notes)
{
    public const string None = "none";

    public static string FilePath => Path.Combine(Repo.Root, "docs", "claims.md");

    public bool HasTest => Tests.Count > 0 && Tests[0] != None;

    public static IReadOnlyList<ClaimRow> ReadAll() =>
        Markdown.TableRows(File.ReadAllLines(FilePath)).Select(cells => new ClaimRow(
            Markdown.Plain(cells[0]),
            cells.Length > 1 ? cells[1] : "",
            cells.Length > 2 ? Markdown.Plain(cells[2]).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [],
            cells.Length > 3 ? cells[3] : "")).ToList();
}
