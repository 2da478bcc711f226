namespace Nspawn.Build.Tests;

/// <summary>
/// The test assembly also runs as a program, for checks that must have a process of their own: credentials
/// belong to a whole process, so the privilege scenario never runs inside the test host.
/// </summary>
public static class Program
{
    public static int Main(string[] args) => args is ["privileges"] ? PrivilegeScenario.Run() : 2;
}
