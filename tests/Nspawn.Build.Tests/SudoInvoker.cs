using System.Reflection;
using System.Runtime.CompilerServices;

namespace Nspawn.Build.Tests;

/// <summary>
/// Under 'sudo tests/all.sh' the test host must not depend on which test comes first: the first
/// EphemeralMachine.StartAsync of a process under sudo drops it to the invoking user for good. So before any test runs,
/// the test host forgets sudo's variables and stays root; the builds and programs the tests start get them back
/// explicitly (<see cref="With"/>: Shell.RunAsync, BackgroundRun), as a user's sudo build has them. Tests of sudo
/// behaviour set their own on the processes they start.
/// </summary>
internal static class SudoInvoker
{
    private static readonly string[] Names = ["SUDO_USER", "SUDO_UID", "SUDO_GID"];

    /// <summary>sudo's variables as the test host was started with them (those that were set).</summary>
    public static IReadOnlyDictionary<string, string> Variables { get; private set; } = new Dictionary<string, string>();

    [ModuleInitializer]
    internal static void Forget()
    {
        // Run as a program (Program.Main: a scenario in a process of its own), the variables its test set are its to use.
        if (Assembly.GetEntryAssembly() == typeof(SudoInvoker).Assembly)
            return;
        Variables = Names.Select(n => (Name: n, Value: Environment.GetEnvironmentVariable(n))).Where(v => v.Value is not null)
            .ToDictionary(v => v.Name, v => v.Value!);
        foreach (var name in Names)
            Environment.SetEnvironmentVariable(name, null);
    }

    /// <summary>The environment of a process the tests start: sudo's variables, with <paramref name="env"/> over them.</summary>
    public static Dictionary<string, string?> With(IReadOnlyDictionary<string, string?>? env)
    {
        var all = Variables.ToDictionary(v => v.Key, v => (string?)v.Value);
        foreach (var (name, value) in env ?? new Dictionary<string, string?>())
            all[name] = value;
        return all;
    }
}
