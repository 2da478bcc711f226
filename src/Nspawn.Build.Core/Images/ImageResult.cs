namespace Nspawn.Build;

/// <summary>What <see cref="ImageBuilder.EnsureAsync"/> did.</summary>
internal enum ImageResult { UpToDate, Built }
