namespace Nspawn.Build;

/// <summary>
/// A machine's address, set from the host once it is ready: the host's ip(8) runs in the machine's network
/// namespace only (nsenter -n), so nothing of the guest runs on the host and the image needs no network tools.
/// </summary>
internal static class GuestNetwork
{
    public static async Task ConfigureAsync(Machine machine, NetworkAttachment attachment, CancellationToken cancellationToken)
    {
        var network = attachment.Network;
        await HostLinks.AttachAsync(attachment.Veth, network.Bridge, cancellationToken);
        await InMachineAsync(machine, ["link", "set", NetworkAttachment.GuestInterface, "up"], cancellationToken);
        await InMachineAsync(machine, ["address", "add", $"{attachment.Address}/{network.Range.PrefixLength}", "dev", NetworkAttachment.GuestInterface], cancellationToken);
        // No route out unless asked: then the bridge (the host) is the way.
        if (network.Outbound)
            await InMachineAsync(machine, ["route", "add", "default", "via", network.Gateway], cancellationToken);
    }

    private static Task<string> InMachineAsync(Machine machine, IReadOnlyList<string> ipArgs, CancellationToken cancellationToken) =>
        HostCommand.RunCheckedAsync(ToolLocator.Require(Tool.Nsenter),
            ["-t", machine.LeaderPid.ToString(System.Globalization.CultureInfo.InvariantCulture), "-n", "--", ToolLocator.Require(Tool.Ip), .. ipArgs],
            ErrorCodes.NetworkFailed, cancellationToken);
}
