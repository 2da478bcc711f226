using Nspawn.Testing;
using NUnit.Framework;

namespace Nunit5;

public class ApiTests
{
    // Compiles against the tests' API and runs without machines (no NspawnOnTest).
    [Test]
    public void The_tests_API_is_there() => Assert.That(typeof(EphemeralMachine).Namespace, Is.EqualTo("Nspawn.Testing"));
}
