using System.Text.RegularExpressions;
using ArchUnitNET.Loader;

namespace Nspawn.Build.Tests;

/// <summary>
/// The layers of Core, read from its folders (one type per file): Errors, then Host, then Images, then Machines, then
/// Network and Agent, then Runs, then Settings (which resolves a project into all of them). A type may use its own layer and those
/// below. The uses of a higher layer that the code has today are listed in docs/architecture.md ("Uses against the
/// layers"): a new one fails here, and so does a listed one that is gone (take it off the list). Constants are inlined by
/// the compiler and so not seen.
/// </summary>
[Trait("Category", "Unit")]
public sealed partial class ArchitectureTests
{
    private static readonly string[] Layers = ["Errors|Json", "Host", "Images", "Machines", "Network|Agent", "Runs", "Settings"];

    [GeneratedRegex(@"^\s*(?:public|internal|file)?\s*(?:static\s+|sealed\s+|abstract\s+|partial\s+|readonly\s+)*(?:class|record|struct|enum|interface)\s+(?:struct\s+|class\s+)?(\w+)", RegexOptions.Multiline)]
    private static partial Regex TypeDeclaration();

    [GeneratedRegex(@"^\| `(\w+)` \| `(\w+)` \|", RegexOptions.Multiline)]
    private static partial Regex DebtRow();

    private static string CoreDir => Path.Combine(Repo.Root, "src/Nspawn.Build.Core");

    /// <summary>Each type of Core's, by name, and the folder its file is in.</summary>
    private static Dictionary<string, string> Folders()
    {
        var folders = new Dictionary<string, string>();
        foreach (var file in Directory.EnumerateFiles(CoreDir, "*.cs", SearchOption.AllDirectories).Where(f => !f.Contains("/obj/") && !f.Contains("/bin/")))
        {
            var folder = Path.GetRelativePath(CoreDir, Path.GetDirectoryName(file)!);
            foreach (Match m in TypeDeclaration().Matches(File.ReadAllText(file)))
                folders.TryAdd(m.Groups[1].Value, folder);
        }
        return folders;
    }

    private static int Rank(string folder) => Array.FindIndex(Layers, l => l.Split('|').Contains(folder));

    /// <summary>A compiled type's name as written in the source: no namespace, generic arity or nested (compiler-made) part.</summary>
    private static string SourceName(string fullName)
    {
        var name = fullName.Split('+')[0];
        name = name[(name.LastIndexOf('.') + 1)..];
        return name.Split('`')[0];
    }

    /// <summary>Every use of a higher layer: (user, used), by source type name.</summary>
    private static SortedSet<(string From, string To)> UsesUpward()
    {
        var folders = Folders();
        var architecture = new ArchLoader().LoadAssemblies(typeof(Machine).Assembly).Build();
        var uses = new SortedSet<(string, string)>();
        foreach (var type in architecture.Types)
        {
            var from = SourceName(type.FullName);
            if (!folders.TryGetValue(from, out var fromFolder))
                continue;
            foreach (var dependency in type.Dependencies)
            {
                var to = SourceName(dependency.Target.FullName);
                if (to != from && folders.TryGetValue(to, out var toFolder) && Rank(toFolder) > Rank(fromFolder))
                    uses.Add((from, to));
            }
        }
        return uses;
    }

    private static SortedSet<(string From, string To)> Listed() =>
        new(DebtRow().Matches(File.ReadAllText(Path.Combine(Repo.Root, "docs/architecture.md"))).Select(m => (m.Groups[1].Value, m.Groups[2].Value)));

    [Fact]
    public void Every_folder_of_Core_is_a_layer()
    {
        var folders = Folders().Values.Distinct().Where(f => f != ".").ToList();
        Assert.All(folders, f => Assert.True(Rank(f) >= 0, $"the folder {f} of Core is in no layer: add it to ArchitectureTests.Layers and docs/architecture.md"));
    }

    [Fact]
    public void No_type_uses_a_higher_layer_but_those_listed()
    {
        var actual = UsesUpward();
        var listed = Listed();
        var added = actual.Except(listed).Select(u => $"| `{u.From}` | `{u.To}` |").ToList();
        var gone = listed.Except(actual).Select(u => $"{u.From} -> {u.To}").ToList();
        Assert.True(added.Count == 0, "new uses of a higher layer (move the code, or a step, down):\n" + string.Join("\n", added));
        Assert.True(gone.Count == 0, "listed uses that are gone (take them off docs/architecture.md): " + string.Join(", ", gone));
    }

    [Fact]
    public void One_type_runs_a_run_for_the_build_and_for_MTP_mode()
    {
        // What boots a run's machines (all at once, the pool) and what ends them is Run's alone: the tasks
        // (ContainerTest, NspawnOnTest) and MTP mode's session go through it.
        var architecture = new ArchLoader().LoadAssemblies(typeof(Machine).Assembly, typeof(Tasks.StartEphemeral).Assembly).Build();
        string[] runOnly = ["RunStop", "MachinePool"];
        var users = architecture.Types
            .SelectMany(t => t.Dependencies.Select(d => (From: SourceName(t.FullName), To: SourceName(d.Target.FullName))))
            .Where(u => runOnly.Contains(u.To) && u.From != u.To)
            .Select(u => u.From).ToHashSet();
        // RunStop is the steps of Run's end; PoolDir only names the pool in a comment.
        Assert.Equal(["Run"], users.Except(["PoolDir", "RunStop"]).Order());
        Assert.DoesNotContain(architecture.Types, t => SourceName(t.FullName) is not ("Run" or "RunStop") && t.Dependencies.Any(d => SourceName(d.Target.FullName) == "RunStop"));
        var runUsers = architecture.Types.Where(t => t.Dependencies.Any(d => SourceName(d.Target.FullName) == "Run")).Select(t => SourceName(t.FullName)).ToHashSet();
        Assert.Superset(new HashSet<string> { "StartEphemeral", "StopEphemeral", "RunGuard", "MachineSession" }, runUsers);
    }
}
