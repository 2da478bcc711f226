namespace Nspawn.Build.Tests;

/// <summary>
/// Machines that boot while the project compiles get an eighth of a CPU share until the build is done. The scopes here are
/// folders holding the files a cgroup v1 cpu hierarchy and a cgroup2 one would (no root, no machine); the benchmark's
/// compile row shows what it is worth.
/// </summary>
[Trait("Category", "Unit")]
public sealed class BootPriorityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nspawn-priority-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A machine's scope in a v1 cpu hierarchy, a cgroup2 one with the cpu controller, and one without a controller.</summary>
    private CgroupScope Scope(string name)
    {
        string Dir(string hierarchy, params string[] files)
        {
            var dir = Directory.CreateDirectory(Path.Combine(_dir, hierarchy, name)).FullName;
            foreach (var file in files)
                File.WriteAllText(Path.Combine(dir, file), file == "cpu.shares" ? "1024\n" : "100\n");
            return dir;
        }
        return new CgroupScope([Dir("cpu", "cpu.shares"), Dir("unified", "cpu.weight"), Dir("pids")]);
    }

    private string Share(string hierarchy, string name, string file) => File.ReadAllText(Path.Combine(_dir, hierarchy, name, file)).Trim();

    [Fact]
    public void The_boot_has_an_eighth_until_the_build_is_done_and_a_machine_made_after_it_has_a_full_share()
    {
        var priority = new BootPriority();
        priority.Lower(Scope("first"));
        Assert.Equal("128", Share("cpu", "first", "cpu.shares"));
        Assert.Equal("12", Share("unified", "first", "cpu.weight"));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_dir, "pids", "first")));

        priority.Raise();
        Assert.Equal("1024", Share("cpu", "first", "cpu.shares"));
        Assert.Equal("100", Share("unified", "first", "cpu.weight"));

        priority.Lower(Scope("later"));
        Assert.Equal("1024", Share("cpu", "later", "cpu.shares"));
        Assert.Equal("100", Share("unified", "later", "cpu.weight"));
    }

    [Fact]
    public void A_scope_gone_before_the_raise_is_left_alone()
    {
        var priority = new BootPriority();
        var scope = Scope("gone");
        priority.Lower(scope);
        foreach (var dir in scope.Dirs)
            Directory.Delete(dir, recursive: true);
        priority.Raise();
        Assert.All(scope.Dirs, d => Assert.False(Directory.Exists(d)));
    }
}
