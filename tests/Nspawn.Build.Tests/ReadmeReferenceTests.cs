using System.Reflection;
using System.Text.RegularExpressions;

namespace Nspawn.Build.Tests;

/// <summary>The README's reference tables against the code: every error code, property and public target, and the defaults.</summary>
[Trait("Category", "Unit")]
public sealed partial class ReadmeReferenceTests
{
    private static string Targets => string.Concat(Directory.GetFiles(Path.Combine(Repo.Root, "build"), "*.targets").Select(File.ReadAllText));

    [Fact]
    public void The_errors_table_lists_every_code_the_package_reports_and_no_other()
    {
        var codes = typeof(ErrorCodes).GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (string)f.GetRawConstantValue()!).ToHashSet();
        var rows = Readme.FirstColumn("Errors");
        Assert.Equal(rows.Count, rows.Distinct().Count());
        Assert.Equal(codes.Order(), rows.Order());
    }

    [Fact]
    public void The_properties_table_lists_every_property_the_targets_read_and_no_other()
    {
        var read = PropertyUse().Matches(Targets).Select(m => m.Groups[1].Value).ToHashSet();
        var rows = Readme.FirstColumn("Properties");
        var section = string.Join('\n', Markdown.Section(Readme.Lines, "Properties"));
        // An older name (NspawnOnVSTest) is named in its successor's row.
        var undocumented = read.Where(p => !section.Contains($"`{p}`")).ToList();
        var unknown = rows.Where(r => r.StartsWith("Nspawn", StringComparison.Ordinal) && !read.Contains(r)).ToList();
        Assert.True(undocumented.Count == 0, "Not in the README's properties: " + string.Join(", ", undocumented));
        Assert.True(unknown.Count == 0, "In the README's properties but read by no target: " + string.Join(", ", unknown));
        Assert.Contains("NspawnImage", rows);
    }

    [Fact]
    public void The_defaults_in_the_properties_table_are_the_codes()
    {
        var defaults = Markdown.TableRows(Markdown.Section(Readme.Lines, "Properties")).ToDictionary(c => Markdown.Plain(c[0]), c => Markdown.Plain(c[1]));
        var expected = new Dictionary<string, string>
        {
            ["NspawnImage"] = Defaults.Image,
            ["NspawnMirror"] = Defaults.Mirror,
            ["NspawnVariant"] = Defaults.Variant,
            ["NspawnInclude"] = Defaults.Include,
            ["NspawnBtrfsImageSize"] = Defaults.LoopFileSize,
            ["NspawnEphemeralMode"] = Defaults.EphemeralMode,
            ["NspawnLauncher"] = Defaults.Launcher,
            ["NspawnNetwork"] = Defaults.Network,
            ["NspawnNetworkRange"] = Defaults.NetworkRange,
            ["NspawnNetworkOutbound"] = Defaults.NetworkOutbound,
            ["NspawnKeepLogs"] = Defaults.KeepLogs,
            ["NspawnKeepOnFailure"] = Defaults.KeepOnFailure,
            ["NspawnPrivateUsers"] = Defaults.PrivateUsers,
            ["NspawnPoolSize"] = Defaults.PoolSize.ToString(),
            ["NspawnBootTimeout"] = Defaults.BootTimeout.TotalSeconds.ToString(),
            ["NspawnStopTimeout"] = Defaults.StopTimeout.TotalSeconds.ToString(),
            ["NspawnImageBuildTimeout"] = Defaults.ImageBuildTimeout.TotalSeconds.ToString(),
            ["NspawnBtrfsImageFile"] = "$(NspawnChrootsDir)/" + Defaults.LoopFileName,
        };
        Assert.Equal(expected, expected.Keys.ToDictionary(k => k, k => defaults[k]));
    }

    [Fact]
    public void The_targets_table_lists_every_public_target_and_no_other()
    {
        // The phases of NspawnPrepareImages are named in its row.
        var phases = new[] { "NspawnImportImages", "NspawnBuildImages" };
        var targets = TargetName().Matches(Targets).Select(m => m.Groups[1].Value).Where(t => !t.StartsWith('_') && !phases.Contains(t)).ToHashSet();
        Assert.Equal(targets.Order(), Readme.FirstColumn("Targets").Order());
        var section = string.Join('\n', Markdown.Section(Readme.Lines, "Targets"));
        Assert.All(phases, p => Assert.Contains($"`{p}`", section));
    }

    [GeneratedRegex(@"\$\((Nspawn\w+)\)")]
    private static partial Regex PropertyUse();

    [GeneratedRegex(@"<Target Name=""(\w+)""")]
    private static partial Regex TargetName();
}
