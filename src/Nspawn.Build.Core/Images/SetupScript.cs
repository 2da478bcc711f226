namespace Nspawn.Build;

/// <summary>An image's setup script, run inside the new image (not booted) as nspawn's only command, with the host's network.</summary>
internal static class SetupScript
{
    /// <summary>Each output line goes to <paramref name="output"/>; throws NSPAWN0022 when the script fails.</summary>
    public static async Task RunAsync(string imageDir, string script, Action<string> output, TimeSpan limit, CancellationToken cancellationToken)
    {
        var name = TempNames.Machine("setup");
        string[] argv =
        [
            ToolLocator.Require(Tool.SystemdNspawn), "--quiet", "--register=no", "--keep-unit", "--console=pipe", $"--directory={imageDir}", $"--machine={name}",
            $"--bind-ro={script}:/run/nspawn-build-setup", "--setenv=DEBIAN_FRONTEND=noninteractive", "--", "/bin/sh", "-e", "/run/nspawn-build-setup",
        ];
        // Like a machine: in a unit of its own where systemd runs the host, else in cgroups of its own.
        var (exitCode, tail) = await ScopedChild.RunAsync(name, argv, output, $"The setup script '{script}'",
            grace: TimeSpan.FromSeconds(5), limit, inSystemdUnit: LaunchOptions.HostHasSystemd, cancellationToken);
        if (exitCode != 0)
            throw new NspawnException(ErrorCodes.SetupFailed,
                $"The setup script '{script}' failed with exit code {exitCode} in the new image; the image was not changed. Last output:\n{tail}");
    }
}
