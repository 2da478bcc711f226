using System.Text.RegularExpressions;

namespace Nspawn.Build.Tests;

/// <summary>
/// Just enough Markdown for the tests that hold the README and docs/claims.md to the code: headings outside code
/// blocks, a section's text, the rows of its tables, and GitHub's anchor of a heading.
/// </summary>
public static partial class Markdown
{
    /// <summary>Each heading's level and text, in order; lines inside ``` blocks are not headings.</summary>
    public static IReadOnlyList<(int Level, string Text)> Headings(IEnumerable<string> lines)
    {
        var headings = new List<(int, string)>();
        var inCode = false;
        foreach (var line in lines)
        {
            if (line.StartsWith("```", StringComparison.Ordinal))
                inCode = !inCode;
            else if (!inCode && HeadingLine().Match(line) is { Success: true } m)
                headings.Add((m.Groups[1].Length, m.Groups[2].Value.Trim()));
        }
        return headings;
    }

    /// <summary>The lines under a heading, up to the next heading of the same or a higher level.</summary>
    public static IReadOnlyList<string> Section(IReadOnlyList<string> lines, string heading)
    {
        var inCode = false;
        int start = -1, level = 0;
        for (var i = 0; i < lines.Count; i++)
        {
            if (lines[i].StartsWith("```", StringComparison.Ordinal))
            {
                inCode = !inCode;
                continue;
            }
            if (inCode || HeadingLine().Match(lines[i]) is not { Success: true } m)
                continue;
            if (start >= 0 && m.Groups[1].Length <= level)
                return lines.Skip(start).Take(i - start).ToList();
            if (start < 0 && m.Groups[2].Value.Trim() == heading)
                (start, level) = (i + 1, m.Groups[1].Length);
        }
        return start < 0 ? throw new InvalidOperationException($"No heading '{heading}'.") : lines.Skip(start).ToList();
    }

    /// <summary>The cells of every table row in <paramref name="lines"/>, without the header and separator rows.</summary>
    public static IReadOnlyList<string[]> TableRows(IEnumerable<string> lines)
    {
        var rows = new List<string[]>();
        var header = true;
        foreach (var line in lines)
        {
            if (!line.StartsWith('|'))
            {
                header = true;
                continue;
            }
            var cells = line.Trim().Trim('|').Split('|').Select(c => c.Trim()).ToArray();
            if (cells.All(c => c.Length > 0 && c.All(ch => ch is '-' or ':')))
                continue;
            if (header)
            {
                header = false;
                continue;
            }
            rows.Add(cells);
        }
        return rows;
    }

    /// <summary>A cell's text without its code marks.</summary>
    public static string Plain(string cell) => cell.Replace("`", "").Trim();

    /// <summary>GitHub's anchor of a heading: lower case, punctuation dropped, spaces made dashes.</summary>
    public static string Anchor(string heading) =>
        new string(heading.ToLowerInvariant().Where(c => char.IsLetterOrDigit(c) || c is ' ' or '-' or '_').ToArray()).Replace(' ', '-');

    [GeneratedRegex(@"^(#{1,6})\s+(.+)$")]
    private static partial Regex HeadingLine();
}
