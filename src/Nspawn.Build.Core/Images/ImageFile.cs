namespace Nspawn.Build;

/// <summary>A host file copied into an image before its setup script: the file's full path, and an absolute path in the image.</summary>
internal sealed record ImageFile(string Source, string Destination);
