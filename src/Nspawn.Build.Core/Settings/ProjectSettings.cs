namespace Nspawn.Build;

/// <summary>
/// What the project says, unchecked: each Nspawn* property (without its prefix) and item, empty when unset.
/// <see cref="SettingsResolver"/> turns it into checked values once per build.
/// </summary>
internal sealed record ProjectSettings
{
    /// <summary>The project's folder, for relative paths.</summary>
    public string BaseDir { get; init; } = "";
    public string ChrootsDir { get; init; } = "";
    public string BtrfsImageFile { get; init; } = "";
    public string BtrfsImageSize { get; init; } = "";
    public string EphemeralMode { get; init; } = "";
    public string Image { get; init; } = "";
    public string Suite { get; init; } = "";
    public string Mirror { get; init; } = "";
    public string Variant { get; init; } = "";
    public string Include { get; init; } = "";
    public string Exclude { get; init; } = "";
    public string Arch { get; init; } = "";
    public string Components { get; init; } = "";
    public string SetupScript { get; init; } = "";
    public string SlimBoot { get; init; } = "";
    public string ImageMaxAge { get; init; } = "";
    public string ImageCacheDir { get; init; } = "";
    public string ImageBuildTimeout { get; init; } = "";
    public string KeepImages { get; init; } = "";
    public string BootTimeout { get; init; } = "";
    public string StopTimeout { get; init; } = "";
    public string Launcher { get; init; } = "";
    public string Network { get; init; } = "";
    public string NetworkRange { get; init; } = "";
    public string NetworkOutbound { get; init; } = "";
    public string KeepLogs { get; init; } = "";
    public string KeepOnFailure { get; init; } = "";
    public string PrivateUsers { get; init; } = "";
    public string PoolSize { get; init; } = "";
    /// <summary>VSTestResultsDirectory: where the tests' results go, and the machines' logs with them.</summary>
    public string ResultsDir { get; init; } = "";
    /// <summary>The suite's own run settings file (VSTestSetting), which must exist when set.</summary>
    public string RunSettings { get; init; } = "";
    public IReadOnlyList<ProjectItem> Machines { get; init; } = [];
    public IReadOnlyList<ProjectItem> ImageDefinitions { get; init; } = [];
    public IReadOnlyList<ProjectItem> ImageFiles { get; init; } = [];
    public IReadOnlyList<ProjectItem> Binds { get; init; } = [];
}
