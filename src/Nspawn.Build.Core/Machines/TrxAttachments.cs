using System.Text;
using System.Xml;
using System.Xml.Linq;

namespace Nspawn.Build;

/// <summary>
/// Lists saved logs in the TRX files that a test run wrote in the results folder, as VSTest lists a run's
/// own attachments: copied into the run's deployment folder (RUN/In) and named in
/// TestRun/ResultSummary/ResultFiles by their path in it, so that CI systems that publish TRX files show
/// them next to the failure. vstest.console writes the TRX, so this works even after a test host crashed.
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
    /// returns the TRX files changed. A TRX file that is a link, or not a TRX, is left alone.
    /// </summary>
    public static IReadOnlyList<string> Add(string resultsDir, IReadOnlyList<string> files, DateTime since)
    {
        var changed = new List<string>();
        if (files.Count == 0 || !Directory.Exists(resultsDir))
            return changed;
        foreach (var trx in Directory.EnumerateFiles(resultsDir, "*.trx").Order())
        {
            var info = new FileInfo(trx);
            if (info.LinkTarget is not null || info.LastWriteTimeUtc < since.AddSeconds(-2))
                continue;
            XDocument doc;
            try
            {
                doc = XDocument.Load(trx, LoadOptions.PreserveWhitespace);
            }
            catch (XmlException)
            {
                continue;
            }
            if (doc.Root is not { } run || run.Name != Ns + "TestRun")
                continue;
            var inDir = Path.Combine(resultsDir, DeploymentRoot(run, trx), "In");
            var paths = files.Select(file => Path.GetRelativePath(resultsDir, file)).ToList();
            foreach (var (file, path) in files.Zip(paths))
                Copy(file, resultsDir, Path.Combine(inDir, path));
            List(run, paths);
            using (var writer = XmlWriter.Create(new FileStream(trx, FileMode.Truncate, FileAccess.Write), new XmlWriterSettings { Encoding = new UTF8Encoding(true) }))
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

    private static void Copy(string file, string resultsDir, string target)
    {
        var made = UserFiles.CreateDirectory(resultsDir, Path.GetDirectoryName(target)!);
        using (var from = File.OpenRead(file))
        using (var to = UserFiles.Create(target))
            from.CopyTo(to);
        UserFiles.GiveToSudoUser([.. made, target]);
    }
}
