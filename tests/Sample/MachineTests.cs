using System.Diagnostics;
using System.Text.Json;
using Xunit;

namespace Sample.Tests;

/// <summary>Tests that use the machine ContainerTest booted for them, reaching it with nsenter on its leader PID.</summary>
public class MachineTests
{
    private static string Env(string name) =>
        Environment.GetEnvironmentVariable(name) ?? throw new InvalidOperationException($"{name} is not set: run these tests with 'sudo dotnet build -t:ContainerTest'.");

    /// <summary>Runs a command inside the machine: its mount, UTS, IPC, network and PID namespaces.</summary>
    private static (int ExitCode, string Output) Exec(params string[] argv)
    {
        var psi = new ProcessStartInfo("nsenter") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-t", Env("NSPAWN_LEADER_PID"), "-m", "-u", "-i", "-n", "-p", "--" }.Concat(argv))
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output.Trim());
    }

    private static JsonElement FirstMachine()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Env("NSPAWN_MACHINES_FILE")));
        return doc.RootElement.GetProperty("machines")[0].Clone();
    }

    [Fact]
    public void The_machine_runs_Debian()
    {
        var (code, output) = Exec("cat", "/etc/os-release");
        Assert.Equal(0, code);
        Assert.Contains("ID=debian", output);
    }

    [Fact]
    public void The_machine_is_the_one_named_in_the_environment()
    {
        var machine = FirstMachine();
        Assert.Equal(Env("NSPAWN_MACHINE"), machine.GetProperty("name").GetString());
        Assert.Equal(Env("NSPAWN_LEADER_PID"), machine.GetProperty("leaderPid").GetInt32().ToString());
        Assert.Equal("default", machine.GetProperty("logicalName").GetString());
        // The image has its own /etc/hostname (its name), not the host's that debootstrap copied.
        Assert.Equal(machine.GetProperty("image").GetString(), Exec("hostname").Output);
    }

    [Fact]
    public void Systemd_inside_has_booted()
    {
        var (_, state) = Exec("systemctl", "is-system-running", "--wait");
        Assert.Contains(state, new[] { "running", "degraded" });
        Assert.Equal((0, "active"), Exec("systemctl", "is-active", "dbus.service"));
    }

    [Fact]
    public void Writes_stay_in_the_ephemeral_snapshot()
    {
        var file = $"/root/written-by-test-{Guid.NewGuid():N}";
        Assert.Equal(0, Exec("sh", "-c", $"echo hello > {file}").ExitCode);
        Assert.Equal((0, "hello"), Exec("cat", file));
        var imageDir = FirstMachine().GetProperty("imageDir").GetString()!;
        Assert.True(File.Exists(Path.Combine(imageDir, "etc/os-release")), $"{imageDir} should be the image");
        Assert.False(File.Exists(imageDir + file), "a write inside the machine reached the image");
    }

    [Fact]
    public void Fails_when_asked_to()
    {
        // The package's own tests set SAMPLE_FAIL=1 to check that a failing suite fails the build and still stops the machine.
        Assert.NotEqual("1", Environment.GetEnvironmentVariable("SAMPLE_FAIL"));
    }
}
