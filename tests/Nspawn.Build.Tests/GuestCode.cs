namespace Nspawn.Build.Tests;

/// <summary>Methods AgentTests run inside a machine through InvokeAsync.</summary>
public static class GuestCode
{
    public static int Add(int a, int b) => a + b;

    public static string Hostname() => File.ReadAllText("/etc/hostname").Trim();

    public static async Task<string[]> LinesAsync(string path) => (await File.ReadAllLinesAsync(path)).Take(2).ToArray();

    public static void Touch(string path) => File.WriteAllText(path, "touched");

    public static Task TouchAsync(string path) => File.WriteAllTextAsync(path, "touched async");

    public static int Fail(string why) => throw new InvalidOperationException(why);

    public static int Call(Func<int> f) => f();

    public static Type TypeOfInt() => typeof(int);

    public sealed record Config(string Name, int Port);

    public static Config Echo(Config config) => config with { Port = config.Port + 1 };

    public static int Instance(this string s) => s.Length;
}
