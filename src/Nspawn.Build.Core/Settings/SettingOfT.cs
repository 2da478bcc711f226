namespace Nspawn.Build;

/// <summary>
/// A setting whose value is a <typeparamref name="T"/>: its parser checks the text (throwing the coded error that
/// names what the user wrote), and its typed default is the parse of its default text, so there is one default.
/// </summary>
internal sealed class Setting<T>(string name, string defaultText, Func<string, string, T> parse, string doc) : Setting(name, defaultText, doc)
{
    // Parsed when first asked for: a parser may read the host (NspawnLauncher's auto).
    private readonly Lazy<T> _default = new(() => parse(defaultText, name));

    /// <summary>The value when the project sets nothing.</summary>
    public T Default => _default.Value;

    /// <summary>Checks <paramref name="text"/>; an error names <paramref name="label"/>: the property, or an item's metadata that stands for it.</summary>
    public T Parse(string text, string label) => parse(text, label);

    /// <summary>What the project wrote to the property, checked, or the default.</summary>
    public T Read(string? written) => parse(Or(written), Name);
}
