using System.ComponentModel;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using CliWrap;
using CliWrap.Exceptions;

namespace Nspawn.Build;

/// <summary>
/// Images shipped between CI runs: a finished image is exported as a compressed 'btrfs send' stream named
/// by its stamp, and imported with 'btrfs receive' before falling back to debootstrap. The cache is not
/// trusted (a CI cache can be poisoned, its folder may be a user's): a stream is received confined to a scratch
/// folder of the chroots file system, must make exactly one subvolume holding the right stamp, and anything
/// else is reported and built instead.
/// </summary>
internal sealed class ImageCache(string cacheDir)
{
    /// <summary>What every 'btrfs send' stream begins with (after gzip).</summary>
    private static readonly byte[] SendStreamMagic = "btrfs-stream\0"u8.ToArray();

    public string CacheDir { get; } = cacheDir;

    /// <summary>How long one export or import may take before it is stopped.</summary>
    public TimeSpan Limit { get; init; } = Settings.ImageBuildTimeout.Default;

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
        var root = Path.GetDirectoryName(imageDir)!;
        var frozen = TempNames.ImageTemp(root, spec.Name, ".send-");
        var partial = file + ".partial";
        try
        {
            await Subvolumes.SnapshotAsync(imageDir, frozen, cancellationToken, readOnly: true);
            var stderr = new StringBuilder();
            // Never through a symlink: the cache folder is one a user can write. A leftover (or a planted link) goes first.
            File.Delete(partial);
            await using (var output = NativeFile.CreateNoFollow(partial))
            await using (var compressed = new GZipStream(output, CompressionLevel.Fastest))
            {
                var result = await WithLimitAsync($"btrfs send of image '{spec.Name}'", token => Cli.Wrap(btrfs).WithArguments(["send", "-q", frozen])
                    .WithStandardOutputPipe(PipeTarget.ToStream(compressed))
                    .WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr))
                    .WithValidation(CommandResultValidation.None).ExecuteAsync(token), cancellationToken);
                if (result.ExitCode != 0)
                    throw new NspawnException(ErrorCodes.BtrfsFailed, $"btrfs send of image '{spec.Name}' failed: {stderr.ToString().Trim()}");
            }
            File.Move(partial, file, overwrite: true);
            return true;
        }
        finally
        {
            File.Delete(partial);
            await Subvolumes.RemoveTreeAsync(root, frozen, CancellationToken.None);
        }
    }

    /// <summary>
    /// Receives the image of this stamp into <paramref name="target"/> (a new, writable subvolume). False when the
    /// cache has none, or (reported to <paramref name="warn"/>) when its stream is damaged or not an image of ours.
    /// </summary>
    public async Task<bool> TryImportAsync(ImageSpec spec, string target, Action<NspawnWarning> warn, CancellationToken cancellationToken)
    {
        var file = FileOf(spec);
        if (FileStatus.Of(file) is null)
            return false;
        var root = Path.GetDirectoryName(target)!;
        var receiving = TempNames.ImageTemp(root, spec.Name, ".recv-");
        try
        {
            if (FileStatus.Of(file) is not { IsRegularFile: true })
                throw new InvalidDataException("it is not a regular file");
            Directory.CreateDirectory(receiving);
            var btrfs = ToolLocator.Require(Tool.Btrfs);
            var stderr = new StringBuilder();
            await using (var input = File.OpenRead(file))
            await using (var decompressed = new GZipStream(input, CompressionMode.Decompress))
            {
                // --chroot: every path of the stream, and every link it makes, resolves inside the scratch folder, never
                // onto the host; -e: the stream ends at its end marker.
                var result = await WithLimitAsync($"btrfs receive of '{file}'", token => Cli.Wrap(btrfs).WithArguments(["receive", "-e", "--chroot", receiving])
                    .WithStandardInputPipe(PipeSource.FromStream(decompressed))
                    .WithStandardOutputPipe(PipeTarget.ToStringBuilder(stderr))
                    .WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr))
                    .WithValidation(CommandResultValidation.None).ExecuteAsync(token), cancellationToken);
                if (result.ExitCode != 0)
                    throw new InvalidDataException($"btrfs receive failed: {stderr.ToString().Trim()}");
            }
            var received = Directory.GetFileSystemEntries(receiving);
            if (received.Length != 1 || FileStatus.Of(received[0]) is not { IsDirectory: true })
                throw new InvalidDataException($"it made {received.Length} entries rather than one image subvolume");
            // The received subvolume is read-only: what is checked here is what is used.
            if (StoreEntry.ReadStamp(received[0]) is not { } stamp)
                throw new InvalidDataException($"it holds no {ImageBuilder.StampPath} (a regular file in a real etc/ folder)");
            if (stamp != spec.Stamp)
                throw new InvalidDataException("the received image has another stamp");
            await Subvolumes.SnapshotAsync(received[0], target, cancellationToken);
            return true;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or NspawnException or Win32Exception or CliWrapException)
        {
            warn(new NspawnWarning(ErrorCodes.CacheImportRejected,
                $"The cached image '{file}' was not used: {e.Message.Split('\n')[0]}. Image '{spec.Name}' is built instead; the next export replaces the file."));
            await Subvolumes.RemoveTreeAsync(root, target, CancellationToken.None);
            return false;
        }
        finally
        {
            try
            {
                await Subvolumes.RemoveTreeAsync(root, receiving, CancellationToken.None);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NspawnException)
            {
                warn(new NspawnWarning(ErrorCodes.LeftAlone, $"The scratch folder '{receiving}' of the import could not be removed ({e.Message}); the next run's reaper tries again."));
            }
        }
    }

    /// <summary>
    /// Exports we wrote of the images this project uses, other than their current ones: named IMAGE-HASH.btrfs.gz
    /// and holding a btrfs send stream. Anything else in the folder (another project's export, a user's file) is left.
    /// </summary>
    public IEnumerable<string> StaleExports(IReadOnlyList<ImageSpec> used)
    {
        if (!Directory.Exists(CacheDir))
            yield break;
        var current = used.Select(FileOf).ToHashSet();
        foreach (var file in Directory.EnumerateFiles(CacheDir, "*.btrfs.gz"))
        {
            var name = Path.GetFileName(file);
            if (!current.Contains(file) && used.Any(u => Regex.IsMatch(name, $"^{Regex.Escape(u.Name)}-[0-9a-f]{{16}}\\.btrfs\\.gz$")) && IsSendStream(file))
                yield return file;
        }
    }

    private static bool IsSendStream(string file)
    {
        if (FileStatus.Of(file) is not { IsRegularFile: true })
            return false;
        try
        {
            using var input = File.OpenRead(file);
            using var decompressed = new GZipStream(input, CompressionMode.Decompress);
            var head = new byte[SendStreamMagic.Length];
            return decompressed.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) == head.Length && head.AsSpan().SequenceEqual(SendStreamMagic);
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }

    /// <summary>Runs a send or receive within <see cref="Limit"/>; past it, the tool is killed and the step named.</summary>
    private async Task<CommandResult> WithLimitAsync(string step, Func<CancellationToken, Task<CommandResult>> run, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(Limit);
        try
        {
            return await run(limit.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new NspawnException(ErrorCodes.CommandFailed, $"{step} did not finish within {Limit.TotalSeconds:0} s and was stopped.");
        }
    }
}
