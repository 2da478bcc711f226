using Nspawn.Testing;
using Xunit;

namespace XunitV3Mtp1;

public class ApiTests
{
    // Compiles against the tests' API and runs without machines (no NspawnOnTest).
    [Fact]
    public void The_tests_API_is_there() => Assert.Equal("Nspawn.Testing", typeof(EphemeralMachine).Namespace);
}
