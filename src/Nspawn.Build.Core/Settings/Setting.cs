namespace Nspawn.Build;

/// <summary>
/// One Nspawn* property as <see cref="Settings"/> declares it: its name, its default as the text a user would
/// write, and what it is for. The README's properties table shows the same name and default (a test holds them).
/// </summary>
internal abstract class Setting(string name, string defaultText, string doc)
{
    /// <summary>The MSBuild property, such as NspawnBootTimeout; the targets pass it to ResolveNspawnSettings without its prefix.</summary>
    public string Name { get; } = name;

    /// <summary>The default, as a user would write it; empty: none, or one made from something else (<see cref="Shown"/>).</summary>
    public string DefaultText { get; } = defaultText;

    /// <summary>What the setting is for, in a line.</summary>
    public string Doc { get; } = doc;

    /// <summary>How the README shows a default that is not a value of the setting's own (another property's, the host's, debootstrap's).</summary>
    public string? Shown { get; init; }

    /// <summary>What the project wrote, or the default text when it wrote nothing.</summary>
    public string Or(string? written) => string.IsNullOrWhiteSpace(written) ? DefaultText : written;
}
