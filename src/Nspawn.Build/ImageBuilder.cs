using CliWrap;
using CliWrap.Buffered;

namespace Nspawn.Build;

public enum ImageResult { UpToDate, Built }

/// <summary>
/// Makes images in the chroots folder with debootstrap: into a temporary subvolume first, renamed into
/// place only when debootstrap succeeded, so an interrupted build never leaves a half image under the real name.
/// </summary>
public sealed class ImageBuilder(string chrootsDir)
{
    public const string StampPath = "etc/nspawn-build.stamp";

    public string ChrootsDir { get; } = chrootsDir;

    public string ImageDir(ImageSpec spec) => Path.Combine(ChrootsDir, spec.Name);

    public static string BuildLock(string chrootsDir, string image) => Path.Combine(chrootsDir, $".#{image}.build.lck");

    /// <summary>The suffixes of an image's temporary folders: being built, replaced, received from or sent to the cache.</summary>
    public static readonly string[] TempKinds = [".new-", ".old-", ".recv-", ".send-"];

    /// <summary>The build lock of a temporary image folder ('.#NAME.new-*' and the other <see cref="TempKinds"/>).</summary>
    public static string BuildLockOf(string tempDir)
    {
        var name = Path.GetFileName(tempDir)[2..];
        var image = name[..TempKinds.Max(k => name.LastIndexOf(k, StringComparison.Ordinal))];
        return BuildLock(Path.GetDirectoryName(tempDir)!, image);
    }

    /// <summary>Rebuild an image older than this (to pick up security updates); never when null.</summary>
    public TimeSpan? MaxAge { get; init; }

    /// <summary>Where finished images are exported to and imported from ('btrfs send' streams); none when null.</summary>
    public ImageCache? Cache { get; init; }

    public bool IsUpToDate(ImageSpec spec)
    {
        var stamp = Path.Combine(ImageDir(spec), StampPath);
        return File.Exists(stamp) && File.ReadAllText(stamp) == spec.Stamp && !IsTooOld(stamp);
    }

    private bool IsTooOld(string stamp) => MaxAge is { } max && DateTime.UtcNow - File.GetLastWriteTimeUtc(stamp) > max;

    /// <summary>A minbase image with systemd takes about 250 MiB; debootstrap needs room for the packages too.</summary>
    public const long SpaceNeeded = 512L << 20;

    /// <summary>Everything that can be checked before anything is created; the folder may not be mounted yet.</summary>
    public void Check(ImageSpec spec)
    {
        Tools.RequireRoot();
        // An image that is there already needs no debootstrap (a loop-mounted folder may not be mounted yet: then it is required).
        if (!IsUpToDate(spec))
            Tools.Require(Tool.Debootstrap);
        var target = ImageDir(spec);
        if (!Directory.Exists(target))
            return;
        // Never replace a folder that we did not make: it may be the user's.
        if (!File.Exists(Path.Combine(target, StampPath)))
            throw new NspawnException(ErrorCodes.NotOurImage,
                $"'{target}' exists but was not made by Nspawn.Build (it has no {StampPath}). It was left as it is: move it away, or set NspawnImage to another name.");
    }

    public async Task<ImageResult> EnsureAsync(ImageSpec spec, Action<string> progress, CancellationToken cancellationToken)
    {
        Check(spec);
        if (spec.Base is { } baseSpec)
            await EnsureAsync(baseSpec, message => progress($"base image '{baseSpec.Name}': {message}"), cancellationToken);
        var result = await BuildUnlessUpToDateAsync(spec, progress, cancellationToken);
        if (Cache is not null && BtrfsStore.IsBtrfs(ChrootsDir) && await Cache.ExportAsync(ImageDir(spec), spec, cancellationToken))
            progress($"exported to {Cache.FileOf(spec)}");
        return result;
    }

    private async Task<ImageResult> BuildUnlessUpToDateAsync(ImageSpec spec, Action<string> progress, CancellationToken cancellationToken)
    {
        if (IsUpToDate(spec))
        {
            await RequireSubvolumeAsync(ImageDir(spec), cancellationToken);
            return ImageResult.UpToDate;
        }
        BtrfsStore.RequireWritable(ChrootsDir, "NspawnChrootsDir");
        BtrfsStore.RequireSpace(ChrootsDir, SpaceNeeded, $"Building image '{spec.Name}'");

        // One build of an image at a time; a second build waits, then finds it up to date.
        await using var imageLock = await FileLock.AcquireAsync(BuildLock(ChrootsDir, spec.Name),
            () => progress($"waiting for another build of image '{spec.Name}' to finish"), cancellationToken);
        if (IsUpToDate(spec))
            return ImageResult.UpToDate;

        foreach (var stale in Directory.GetDirectories(ChrootsDir, $".#{spec.Name}.new-*"))
            await RemoveTreeAsync(stale, CancellationToken.None);

        var onBtrfs = BtrfsStore.IsBtrfs(ChrootsDir);
        var tmp = Path.Combine(ChrootsDir, $".#{spec.Name}.new-{Guid.NewGuid():N}"[..^20]);
        try
        {
            if (spec.Base is { } baseSpec)
            {
                progress($"a snapshot of image '{baseSpec.Name}'");
                if (onBtrfs)
                    await BtrfsStore.RunAsync(Tools.Require(Tool.Btrfs), ["-q", "subvolume", "snapshot", ImageDir(baseSpec), tmp], cancellationToken);
                else
                    await BtrfsStore.RunAsync("cp", ["-a", "--reflink=auto", "--", ImageDir(baseSpec), tmp], cancellationToken);
            }
            else if (onBtrfs && Cache is not null && await Cache.TryImportAsync(spec, tmp, progress, cancellationToken))
            {
                progress($"imported from {Cache.FileOf(spec)}");
                return await SwapInAsync(spec, tmp);
            }
            else
            {
                if (onBtrfs)
                    await BtrfsStore.RunAsync(Tools.Require(Tool.Btrfs), ["-q", "subvolume", "create", tmp], cancellationToken);
                else
                    Directory.CreateDirectory(tmp);
                await DebootstrapAsync(spec, tmp, progress, cancellationToken);
            }

            // debootstrap copies the host's hostname; systemd fills an empty machine-id afresh at each boot.
            File.WriteAllText(Path.Combine(tmp, "etc/hostname"), spec.Name + "\n");
            File.WriteAllText(Path.Combine(tmp, "etc/machine-id"), "");
            foreach (var (source, destination) in spec.Files)
                CopyInto(tmp, source, destination);
            if (spec.SetupScript is { } script)
                await MachineLauncher.RunScriptInImageAsync(tmp, script, line => progress("setup: " + line), cancellationToken);
            if (spec.Slim)
                Slim(tmp);
            File.WriteAllText(Path.Combine(tmp, StampPath), spec.Stamp);
            return await SwapInAsync(spec, tmp);
        }
        finally
        {
            if (Directory.Exists(tmp))
                await RemoveTreeAsync(tmp, CancellationToken.None);
        }
    }

    /// <summary>Puts a finished image in place; an old one is moved aside first and removed after (machines running from it keep their snapshots).</summary>
    private async Task<ImageResult> SwapInAsync(ImageSpec spec, string tmp)
    {
        var target = ImageDir(spec);
        string? old = null;
        if (Directory.Exists(target))
        {
            old = Path.Combine(ChrootsDir, $".#{spec.Name}.old-{Guid.NewGuid():N}"[..^20]);
            Directory.Move(target, old);
        }
        Directory.Move(tmp, target);
        if (old is not null)
            await RemoveTreeAsync(old, CancellationToken.None);
        return ImageResult.Built;
    }

    private static async Task DebootstrapAsync(ImageSpec spec, string target, Action<string> progress, CancellationToken cancellationToken)
    {
        var debootstrap = Tools.Require(Tool.Debootstrap);
        var eatmydata = Tools.Find(Tool.Eatmydata.Name);
        string[] argv = eatmydata is null ? [debootstrap, .. spec.DebootstrapArguments(target)] : [eatmydata, debootstrap, .. spec.DebootstrapArguments(target)];
        // In cgroups of its own, so that a cancel kills all it started (wget, dpkg, tar), orphans included.
        var scope = CgroupScope.Create(LaunchOptions.UniqueName("debootstrap"));
        var command = Cli.Wrap(Tools.Require(Tool.Sh)).WithArguments(["-c", MachineLauncher.EnterCgroupsAndExec, "sh", .. scope.ProcsFiles, "--", .. argv]);

        var tracker = new DebootstrapProgress(TimeSpan.FromSeconds(5));
        var tail = new LineTail(20);
        void OnLine(string line)
        {
            tail.Add(line);
            if (tracker.OnLine(line, DateTime.UtcNow) is { } report)
                progress(report);
        }

        progress($"debootstrap {spec.Suite} from {spec.Mirror} ({spec.Variant}{(spec.Include.Count > 0 ? ", with " + string.Join(',', spec.Include) : "")}){(eatmydata is null ? "" : " under eatmydata")}");
        // On cancel, debootstrap first gets SIGINT (it unmounts what it mounted in the target), then is killed after 5 s.
        using var forceful = new CancellationTokenSource();
        using var escalate = cancellationToken.Register(() => forceful.CancelAfter(TimeSpan.FromSeconds(5)));
        CommandResult result;
        try
        {
            result = await command
                .WithStandardOutputPipe(PipeTarget.ToDelegate(OnLine))
                .WithStandardErrorPipe(PipeTarget.ToDelegate(OnLine))
                .WithValidation(CommandResultValidation.None)
                .ExecuteAsync(forceful.Token, cancellationToken);
        }
        finally
        {
            await scope.KillAllAsync(TimeSpan.FromSeconds(5));
            scope.Remove();
        }
        if (result.ExitCode != 0)
        {
            var log = Path.Combine(target, "debootstrap/debootstrap.log");
            var detail = File.Exists(log) ? string.Join('\n', File.ReadLines(log).TakeLast(15)) : "";
            throw new NspawnException(ErrorCodes.DebootstrapFailed,
                $"debootstrap of image '{spec.Name}' ({spec.Suite} from {spec.Mirror}) failed with exit code {result.ExitCode} while {tracker.Stage}. Check that the suite exists on the mirror and that the mirror can be reached. Last output:\n{tail}\n{detail}".TrimEnd());
        }
    }

    /// <summary>Copies a host file to an absolute path in the image, keeping its mode.</summary>
    private static void CopyInto(string image, string source, string destination)
    {
        var target = Path.GetFullPath(Path.Combine(image, destination.TrimStart('/')));
        if (!destination.StartsWith('/') || !MountTable.IsUnder(target, image))
            throw new NspawnException(ErrorCodes.BadPath, $"NspawnImageFiles: the Destination '{destination}' of '{source}' is not an absolute path inside the image.");
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        File.Copy(source, target, overwrite: true);
    }

    /// <summary>Masks the units of <see cref="ImageSpec.SlimMasks"/> in an image (a link to /dev/null, as systemctl mask makes).</summary>
    public static void Slim(string imageDir)
    {
        var dir = Path.Combine(imageDir, "etc/systemd/system");
        Directory.CreateDirectory(dir);
        foreach (var unit in ImageSpec.SlimMasks)
        {
            var link = Path.Combine(dir, unit);
            File.Delete(link);
            File.CreateSymbolicLink(link, "/dev/null");
        }
    }

    /// <summary>On btrfs an image must be a subvolume: --ephemeral snapshots it instead of copying it whole.</summary>
    private static async Task RequireSubvolumeAsync(string dir, CancellationToken cancellationToken)
    {
        if (!BtrfsStore.IsBtrfs(dir))
            return;
        var r = await Cli.Wrap(Tools.Require(Tool.Btrfs)).WithArguments(["subvolume", "show", dir])
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(cancellationToken);
        if (r.ExitCode != 0)
            throw new NspawnException(ErrorCodes.NotOurImage,
                $"The image '{dir}' is a plain folder, not a btrfs subvolume, so every machine would copy it whole. It was left as it is: move it away and the next run builds a subvolume.");
    }

    /// <summary>Deletes an image or a half-made one: first what debootstrap left mounted in it, then the subvolume or folder.</summary>
    public static async Task RemoveTreeAsync(string dir, CancellationToken cancellationToken)
    {
        var full = Path.GetFullPath(dir);
        foreach (var m in MountTable.Read().Where(m => MountTable.IsUnder(m.MountPoint, full) && m.MountPoint != full).Reverse())
            await BtrfsStore.RunAsync(Tools.Require(Tool.Umount), ["--lazy", "--", m.MountPoint], cancellationToken);
        if (Tools.Find(Tool.Btrfs.Name) is { } btrfs && BtrfsStore.IsBtrfs(full))
        {
            var r = await Cli.Wrap(btrfs).WithArguments(["-q", "subvolume", "delete", "--commit-after", full])
                .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(cancellationToken);
            if (r.ExitCode == 0)
            {
                // btrfs frees the space in the background after the commit: wait for it (quick after --commit-after), so the next image finds it free.
                await Cli.Wrap(btrfs).WithArguments(["-q", "subvolume", "sync", Path.GetDirectoryName(full)!])
                    .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(cancellationToken);
                return;
            }
        }
        if (!Directory.Exists(full))
            return;
        try
        {
            Directory.Delete(full, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A folder holding read-only subvolumes (a cache import cut short): those go one by one.
            foreach (var child in Directory.GetDirectories(full))
                await RemoveTreeAsync(child, cancellationToken);
            Directory.Delete(full, recursive: true);
        }
    }
}
