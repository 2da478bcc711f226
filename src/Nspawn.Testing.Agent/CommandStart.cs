using Nspawn.Build.Agent;

namespace Nspawn.Testing.Agent;

/// <summary>What a command runs with, as a service of the guest would (a clean environment, the user's identity), whichever way it is started.</summary>
internal sealed record CommandStart(IReadOnlyList<string> Command, IReadOnlyDictionary<string, string> Environment, string WorkingDirectory, Account? Account)
{
    private const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    public static CommandStart Of(IReadOnlyList<string> command, AgentRequest request)
    {
        var account = request.User is null ? null : Account.Find(request.User);
        var environment = new Dictionary<string, string>(StringComparer.Ordinal) { ["PATH"] = DefaultPath };
        if (account is not null)
        {
            // As systemd does for a service with User=.
            (environment["HOME"], environment["USER"], environment["LOGNAME"], environment["SHELL"]) = (account.Home, account.Name, account.Name, account.Shell);
        }
        foreach (var (name, value) in request.Environment ?? new Dictionary<string, string>())
            environment[name] = value;
        return new CommandStart(command, environment, request.WorkingDirectory ?? "/", account);
    }
}
