using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using CliWrap;

namespace Nspawn.Build;

/// <summary>
/// Images shipped between CI runs: a finished image is exported as a compressed 'btrfs send' stream named
/// by its stamp, and imported with 'btrfs receive' before falling back to debootstrap. A damaged or
/// truncated stream fails the import cleanly, and the image is built as if there were no cache.
/// </summary>
internal sealed class ImageCache(string cacheDir)
{
    public string CacheDir { get; } = cacheDir;

    /// <summary>How long a send or a receive may take (NspawnImageBuildTimeout): a stuck one is killed.</summary>
    public TimeSpan Limit { get; init; } = Defaults.ImageBuildTimeout;

    public string FileOf(ImageSpec spec) =>
        Path.Combine(CacheDir, $"{spec.Name}-{Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(spec.Stamp)))[..16].ToLowerInvariant()}.btrfs.gz");

    /// <summary>Exports the image unless the cache has it already (a send needs a read-only snapshot of it).</summary>
    public async Task<bool> ExportAsync(string imageDir, ImageSpec spec, CancellationToken cancellationToken)
    {
        var file = FileOf(spec);
        if (File.Exists(file))
            return false;
        Directory.CreateDirectory(CacheDir);
        var btrfs = ToolLocator.Require(Tool.Btrfs);
        var frozen = TempNames.ImageTemp(Path.GetDirectoryName(imageDir)!, spec.Name, ".send-");
        var partial = file + ".partial";
        try
        {
            await Subvolumes.SnapshotAsync(imageDir, frozen, cancellationToken, readOnly: true);
            var stderr = new StringBuilder();
            await using (var output = File.Create(partial))
            await using (var compressed = new GZipStream(output, CompressionLevel.Fastest))
            {
                var result = await HostCommand.RunPipedAsync(Cli.Wrap(btrfs).WithArguments(["send", "-q", frozen])
                    .WithStandardOutputPipe(PipeTarget.ToStream(compressed))
                    .WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr)), $"btrfs send of image '{spec.Name}' (NspawnImageBuildTimeout)", Limit, cancellationToken);
                if (result.ExitCode != 0)
                    throw new NspawnException(ErrorCodes.BtrfsFailed, $"btrfs send of image '{spec.Name}' failed: {stderr.ToString().Trim()}");
            }
            File.Move(partial, file, overwrite: true);
            return true;
        }
        finally
        {
            File.Delete(partial);
            if (Directory.Exists(frozen))
                await Subvolumes.RemoveTreeAsync(frozen, CancellationToken.None);
        }
    }

    /// <summary>Receives the image of this stamp into <paramref name="target"/> (a new, writable subvolume); false when the cache has none or it is damaged.</summary>
    public async Task<bool> TryImportAsync(ImageSpec spec, string target, Action<string> progress, CancellationToken cancellationToken)
    {
        var file = FileOf(spec);
        if (!File.Exists(file))
            return false;
        var btrfs = ToolLocator.Require(Tool.Btrfs);
        var receiving = TempNames.ImageTemp(Path.GetDirectoryName(target)!, spec.Name, ".recv-");
        Directory.CreateDirectory(receiving);
        try
        {
            var stderr = new StringBuilder();
            await using var input = File.OpenRead(file);
            await using var decompressed = new GZipStream(input, CompressionMode.Decompress);
            var result = await HostCommand.RunPipedAsync(Cli.Wrap(btrfs).WithArguments(["receive", receiving])
                .WithStandardInputPipe(PipeSource.FromStream(decompressed))
                .WithStandardOutputPipe(PipeTarget.ToStringBuilder(stderr))
                .WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr)), $"btrfs receive of image '{spec.Name}' (NspawnImageBuildTimeout)", Limit, cancellationToken);
            var received = Directory.GetDirectories(receiving).SingleOrDefault();
            if (result.ExitCode != 0 || received is null)
                throw new InvalidDataException($"btrfs receive failed: {stderr.ToString().Trim()}");
            var stamp = Path.Combine(received, ImageBuilder.StampPath);
            if (!File.Exists(stamp) || File.ReadAllText(stamp) != spec.Stamp)
                throw new InvalidDataException("the received image has another stamp");
            await Subvolumes.SnapshotAsync(received, target, cancellationToken);
            return true;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NspawnException)
        {
            progress($"the cached image {Path.GetFileName(file)} could not be imported ({e.Message.Split('\n')[0]}): building it instead");
            return false;
        }
        finally
        {
            await Subvolumes.RemoveTreeAsync(receiving, CancellationToken.None);
        }
    }
}
