using System.Text;
using System.Xml;
using System.Xml.Linq;

namespace Nspawn.Build;

/// <summary>
/// Lists saved logs in the TRX files that a test run wrote in the results folder, as VSTest lists a run's
/// own attachments: copied into the run's deployment folder (RUN/In) and named in
/// TestRun/ResultSummary/ResultFiles by their path in it, so that CI systems that publish TRX files show
/// them next to the failure. vstest.console writes the TRX, so this works even after a test host crashed.
/// The results folder is the user's: everything in it is read and written through handles (<see cref="UserFolder"/>),
/// so a link or a FIFO planted there is never followed, read or written through.
/// </summary>
internal static class TrxAttachments
{
    private static readonly XNamespace Ns = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010";

    /// <summary>Adds the saved logs to the TRX files of their runs, in each machine's results folder; returns the TRX files changed.</summary>
    public static IReadOnlyList<string> Add(IEnumerable<SavedLogs> saved) =>
        saved.Where(s => s.Machine.ResultsDir is not null && s.Files.Count > 0).GroupBy(s => s.Machine.ResultsDir!)
            .SelectMany(run => Add(run.Key, run.SelectMany(s => s.Files).ToList(), run.Min(s => s.Machine.Started)))
            .Distinct().ToList();

    /// <summary>
    /// Adds <paramref name="files"/> (in <paramref name="resultsDir"/>) to each TRX file there written since <paramref name="since"/>;
    /// returns the TRX files changed. A TRX file that is not a regular file of one link (a link, a FIFO), or not a TRX, is left alone.
    /// </summary>
    public static IReadOnlyList<string> Add(string resultsDir, IReadOnlyList<string> files, DateTime since)
    {
        var changed = new List<string>();
        using var results = files.Count == 0 ? null : UserFolder.TryOpen(resultsDir, resultsDir);
        if (results is null)
            return changed;
        foreach (var name in NativeFile.Names(results.Handle).Where(n => n.EndsWith(".trx", StringComparison.Ordinal)).Order())
        {
            var trx = Path.Combine(resultsDir, name);
            // Read and rewritten through one handle: the file checked is the file changed.
            using var handle = NativeFile.OpenRegular(name, NativeFile.ReadWrite, results.Handle);
            if (handle is null || FileStatus.Of(handle) is not { Links: 1 } status || status.ModifyTime < since.AddSeconds(-2))
                continue;
            using var stream = new FileStream(handle, FileAccess.ReadWrite);
            XDocument doc;
            try
            {
                doc = XDocument.Load(stream, LoadOptions.PreserveWhitespace);
            }
            catch (XmlException)
            {
                continue;
            }
            if (doc.Root is not { } run || run.Name != Ns + "TestRun")
                continue;
            var inDir = Path.Combine(resultsDir, DeploymentRoot(run, trx), "In");
            var paths = files.Where(file => MountTable.IsUnder(Path.GetFullPath(file), Path.GetFullPath(resultsDir)))
                .Select(file => Path.GetRelativePath(resultsDir, file))
                .Where(path => Copy(resultsDir, path, Path.Combine(inDir, path))).ToList();
            if (paths.Count == 0)
                continue;
            List(run, paths);
            stream.SetLength(0);
            stream.Position = 0;
            using (var writer = XmlWriter.Create(stream, new XmlWriterSettings { Encoding = new UTF8Encoding(true) }))
                doc.Save(writer);
            changed.Add(trx);
        }
        return changed;
    }

    /// <summary>The run's deployment folder, whose In folder holds its attachments (the TRX file's name where it says none).</summary>
    private static string DeploymentRoot(XElement run, string trx) =>
        run.Element(Ns + "TestSettings")?.Element(Ns + "Deployment")?.Attribute("runDeploymentRoot")?.Value is { Length: > 0 } root
        && !root.Contains('/') && root is not (".." or ".")
            ? root : Path.GetFileNameWithoutExtension(trx);

    /// <summary>ResultFile entries in ResultSummary/ResultFiles, where VSTest writes them (before CollectorDataEntries), each path once.</summary>
    internal static void List(XElement run, IReadOnlyList<string> paths)
    {
        var summary = run.Element(Ns + "ResultSummary");
        if (summary is null)
            run.Add(summary = new XElement(Ns + "ResultSummary"));
        var list = summary.Element(Ns + "ResultFiles");
        if (list is null)
        {
            list = new XElement(Ns + "ResultFiles");
            if (summary.Element(Ns + "CollectorDataEntries") is { } collectors)
                collectors.AddBeforeSelf(list);
            else
                summary.Add(list);
        }
        foreach (var path in paths)
            if (!list.Elements(Ns + "ResultFile").Any(e => (string?)e.Attribute("path") == path))
                list.Add(new XElement(Ns + "ResultFile", new XAttribute("path", path)));
    }

    /// <summary>Copies a saved log (<paramref name="path"/> in the results folder), a regular file reached through real folders; false when it is not one.</summary>
    private static bool Copy(string resultsDir, string path, string target)
    {
        var file = Path.Combine(resultsDir, path);
        using var source = UserFolder.TryOpen(resultsDir, Path.GetDirectoryName(file)!);
        using var from = source?.OpenRead(Path.GetFileName(file));
        if (from is null)
            return false;
        using var folder = UserFolder.Make(resultsDir, Path.GetDirectoryName(target)!, Ownership.SudoUser);
        using var to = folder.Create(Path.GetFileName(target));
        from.CopyTo(to);
        return true;
    }
}
