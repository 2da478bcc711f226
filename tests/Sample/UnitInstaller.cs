using System.Diagnostics;

namespace Sample.Tests;

/// <summary>
/// A piece of system code, as a provisioning library would have it: it writes a systemd unit, enables and starts
/// it, and returns its state. InvokeTests runs it for real inside the machine.
/// </summary>
public static class UnitInstaller
{
    public static string InstallAndStart(string name, string execStart)
    {
        if (name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            throw new ArgumentException($"'{name}' is not a plain unit name.", nameof(name));
        File.WriteAllText($"/etc/systemd/system/{name}.service", $"""
            [Unit]
            Description={name}, installed by UnitInstaller

            [Service]
            ExecStart={execStart}

            [Install]
            WantedBy=multi-user.target
            """);
        Systemctl("daemon-reload");
        Systemctl("enable", "--now", $"{name}.service");
        return Systemctl("is-active", $"{name}.service").Trim();
    }

    private static string Systemctl(params string[] args)
    {
        var start = new ProcessStartInfo("systemctl") { RedirectStandardOutput = true };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return output;
    }
}
