namespace Nspawn.Build.Tests;

/// <summary>The repository's README, read once for the tests that hold it to the code.</summary>
public static class Readme
{
    public static string FilePath => Path.Combine(Repo.Root, "README.md");
    public static IReadOnlyList<string> Lines { get; } = File.ReadAllLines(FilePath);
    public static IReadOnlyList<(int Level, string Text)> Headings { get; } = Markdown.Headings(Lines);

    /// <summary>The first cell of every row of the tables under a heading, without code marks.</summary>
    public static IReadOnlyList<string> FirstColumn(string heading) =>
        Markdown.TableRows(Markdown.Section(Lines, heading)).Select(cells => Markdown.Plain(cells[0])).ToList();
}
