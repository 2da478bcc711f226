using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Nspawn.Build.Tasks;

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
    public void The_properties_table_shows_each_setting_with_its_default()
    {
        var defaults = Markdown.TableRows(Markdown.Section(Readme.Lines, "Properties")).ToDictionary(c => Markdown.Plain(c[0]), c => Markdown.Plain(c[1]));
        var wrong = Settings.All.Where(s => defaults.GetValueOrDefault(s.Name) != (s.Shown ?? s.DefaultText))
            .Select(s => $"{s.Name}: the README has '{defaults.GetValueOrDefault(s.Name) ?? "no row"}', the code '{s.Shown ?? s.DefaultText}'").ToList();
        Assert.True(wrong.Count == 0, "The README's properties disagree with Settings:\n" + string.Join('\n', wrong));
        Assert.Contains(Settings.BootTimeout, Settings.All);
    }

    [Fact]
    public void The_targets_pass_every_setting_to_ResolveNspawnSettings_and_no_other_Nspawn_property()
    {
        var task = XDocument.Load(Path.Combine(Repo.Root, "build", "Nspawn.Build.targets")).Descendants().Single(e => e.Name.LocalName == nameof(ResolveNspawnSettings));
        var passed = task.Attributes().Select(a => (Parameter: a.Name.LocalName, Value: a.Value)).Where(a => PropertyUse().IsMatch(a.Value)).ToHashSet();
        // Each is passed as it is written, under its name without the prefix.
        var expected = Settings.All.Select(s => (Parameter: s.Name["Nspawn".Length..], Value: $"$({s.Name})")).ToHashSet();
        Assert.Equal(expected.Order(), passed.Order());
        Assert.Contains(("BootTimeout", "$(NspawnBootTimeout)"), passed);
        foreach (var (parameter, _) in expected)
        {
            Assert.Equal(typeof(string), typeof(ResolveNspawnSettings).GetProperty(parameter)?.PropertyType);
            Assert.Equal(typeof(string), typeof(ProjectSettings).GetProperty(parameter)?.PropertyType);
        }
    }

    [Fact]
    public void Each_setting_has_one_default_its_parser_takes()
    {
        Assert.Equal(Settings.All.Count, Settings.All.Select(s => s.Name).Distinct().Count());
        Assert.All(Settings.All, s => Assert.StartsWith("Nspawn", s.Name));
        // A default shown in words is made elsewhere: the setting has no text of its own to disagree with it.
        Assert.All(Settings.All.Where(s => s.Shown is not null), s => Assert.Equal("", s.DefaultText));
        // Every other default is a value its parser takes: the typed default is that parse.
        Assert.All(Settings.All.Where(s => s.Shown is null), s => s.GetType().GetProperty("Default")!.GetValue(s));
        Assert.Equal(TimeSpan.FromSeconds(60), Settings.BootTimeout.Default);
        Assert.Equal(TimeSpan.FromSeconds(60), Settings.BootTimeout.Read(" "));
        Assert.Equal(KeepLogs.Failure, Settings.KeepLogs.Default);
        Assert.Equal(8L << 30, Settings.BtrfsImageSize.Default);
        Assert.True(Settings.PrivateUsers.Default);
        var e = Assert.Throws<NspawnException>(() => Settings.StopTimeout.Read("soon"));
        Assert.Equal(ErrorCodes.BadTimeout, e.Code);
        Assert.StartsWith("NspawnStopTimeout 'soon' is not a timeout.", e.Message);
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
