using System.Reflection;
using System.Text.RegularExpressions;

namespace Nspawn.Build.Tests;

/// <summary>
/// Every test there is, as <c>ClassName.MethodName</c>: those of this assembly by reflection (a method with
/// [Fact] or [Theory]), and those of the sample suite (tests/Sample, run in real machines by the package tests)
/// from its sources, each test method under the nearest class declared above it.
/// </summary>
public static partial class TestIndex
{
    public static IReadOnlySet<string> All { get; } = Build();

    private static HashSet<string> Build()
    {
        var tests = typeof(TestIndex).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
                .Where(m => m.GetCustomAttributes<FactAttribute>().Any())
                .Select(m => $"{t.Name}.{m.Name}"))
            .ToHashSet();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Repo.Root, "tests", "Sample"), "*.cs", SearchOption.TopDirectoryOnly))
            tests.UnionWith(InSource(File.ReadAllText(file)));
        return tests;
    }

    /// <summary>The test methods a source file declares, each with the class declared last before it.</summary>
    public static IEnumerable<string> InSource(string source)
    {
        var classes = ClassDeclaration().Matches(source);
        foreach (Match method in TestMethod().Matches(source))
            if (classes.LastOrDefault(c => c.Index < method.Index) is { } owner)
                yield return $"{owner.Groups[1].Value}.{method.Groups[1].Value}";
    }

    [GeneratedRegex(@"^[ \t]*(?:\[[^\]\r\n]*\][ \t]*)*(?:(?:public|internal|private|protected|sealed|static|abstract|partial|file)[ \t]+)*class[ \t]+(\w+)", RegexOptions.Multiline)]
    private static partial Regex ClassDeclaration();

    [GeneratedRegex(@"\[(?:Fact|Theory)\b[^\]]*\]\s*(?:\[[^\]]*\]\s*)*public\s+(?:static\s+)?(?:async\s+)?[\w<>\[\],? ]+?\s+(\w+)\s*\(")]
    private static partial Regex TestMethod();
}
