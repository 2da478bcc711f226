using System.Reflection;
using Microsoft.Testing.Platform.Extensions;
using Microsoft.Testing.Platform.Extensions.OutputDevice;
using Microsoft.Testing.Platform.Extensions.TestHostControllers;
using Microsoft.Testing.Platform.OutputDevice;
using Microsoft.Testing.Platform.Services;
using Nspawn.Build;

namespace Nspawn.Testing.Platform;

/// <summary>
/// Runs in the test host controller, the process that starts the test host and sees it exit (passed, failed,
/// Ctrl+C or crashed): boots the machines of the launch file next to the application before the test host
/// starts, gives the test host the NSPAWN_* variables, and ends the run when it has exited (as the build ends one: logs
/// saved, machines kept after failed tests, the warm pool stopped). Enabled only
/// when the build wrote a launch file (NspawnOnTest) and no machines were handed in already (ContainerTest).
/// </summary>
internal sealed class MachinesExtension(IServiceProvider services) : ITestHostEnvironmentVariableProvider, ITestHostProcessLifetimeHandler, IOutputDeviceDataProducer
{
    private readonly IOutputDevice _output = services.GetOutputDevice();
    private readonly Lazy<MachineSession?> _session = new(() =>
        Environment.GetEnvironmentVariable("NSPAWN_MACHINES_FILE") is { Length: > 0 } ? null : MachineSession.FromLaunchFile(LaunchFilePath));
    private readonly CancellationTokenSource _cancel = new();

    public string Uid => "Nspawn.Build.Machines";
    public string Version => typeof(MachinesExtension).Assembly.GetName().Version?.ToString() ?? "0";
    public string DisplayName => "Nspawn.Build machines";
    public string Description => "Boots the systemd-nspawn machines of Nspawn.Build before the test host starts and stops them when it exits.";

    private static string LaunchFilePath => Path.Combine(AppContext.BaseDirectory, LaunchFile.NameFor(Assembly.GetEntryAssembly()?.GetName().Name ?? ""));

    public Task<bool> IsEnabledAsync() => Task.FromResult(_session.Value is not null);

    public async Task UpdateAsync(IEnvironmentVariables environmentVariables)
    {
        // MTP passes no token here: Ctrl+C during the boot cancels it through our own.
        Console.CancelKeyPress += (_, _) => _cancel.Cancel();
        try
        {
            foreach (var (name, value) in await _session.Value!.StartAsync(Say, _cancel.Token))
                environmentVariables.SetVariable(new EnvironmentVariable(name, value, isSecret: false, isLocked: true));
        }
        catch (NspawnException e)
        {
            await DisplayAsync(new ErrorMessageOutputDeviceData($"error {e.Code}: {e.Message}"));
            throw;
        }
    }

    public Task<ValidationResult> ValidateTestHostEnvironmentVariablesAsync(IReadOnlyEnvironmentVariables environmentVariables) => ValidationResult.ValidTask;

    public Task BeforeTestHostProcessStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task OnTestHostProcessStartedAsync(ITestHostProcessInformation testHostProcessInformation, CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task OnTestHostProcessExitedAsync(ITestHostProcessInformation testHostProcessInformation, CancellationToken cancellationToken)
    {
        try
        {
            // A test host that did not exit with 0 ran failed tests (or none, or crashed): logs are saved and machines kept as the project asks.
            await _session.Value!.StopAsync(testsFailed: testHostProcessInformation.ExitCode != 0, Say);
        }
        catch (NspawnException e)
        {
            await DisplayAsync(new ErrorMessageOutputDeviceData($"error {e.Code}: {e.Message}"));
            throw;
        }
    }

    private void Say(string message) => DisplayAsync(new TextOutputDeviceData(message)).GetAwaiter().GetResult();

    // The one call whose shape differs between MTP 1 and 2 (MTP 2 added the token); the same source builds against both.
#if NSPAWN_MTP1
    private Task DisplayAsync(IOutputDeviceData data) => _output.DisplayAsync(this, data);
#else
    private Task DisplayAsync(IOutputDeviceData data) => _output.DisplayAsync(this, data, CancellationToken.None);
#endif
}
