namespace Nspawn.Build;

/// <summary>What an image is made of. Its <see cref="Stamp"/> changes whenever its content would.</summary>
public sealed record ImageSpec(string Name, string Suite, string Mirror, string Variant, IReadOnlyList<string> Include)
{
    /// <summary>Bump when the way images are made changes, so that old images are rebuilt.</summary>
    public const int FormatVersion = 1;

    public static ImageSpec Create(string? name, string? suite, string? mirror, string? variant, string? include) =>
        new(Validate.ImageName(name, "NspawnImage"),
            Validate.ImageName(string.IsNullOrWhiteSpace(suite) ? name : suite, "NspawnSuite"),
            Validate.Mirror(mirror),
            Validate.Variant(variant),
            Validate.Packages(include, "NspawnInclude"));

    public string Stamp =>
        $"format: {FormatVersion}\nsuite: {Suite}\nmirror: {Mirror}\nvariant: {Variant}\ninclude: {string.Join(',', Include)}\n";

    public IReadOnlyList<string> DebootstrapArguments(string target)
    {
        var args = new List<string> { $"--variant={Variant}" };
        if (Include.Count > 0)
            args.Add($"--include={string.Join(',', Include)}");
        args.AddRange([Suite, target, Mirror]);
        return args;
    }
}
