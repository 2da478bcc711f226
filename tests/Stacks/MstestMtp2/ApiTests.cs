using Microsoft.VisualStudio.TestTools.UnitTesting;
using Nspawn.Testing;

namespace MstestMtp2;

[TestClass]
public class ApiTests
{
    // Compiles against the tests' API and runs without machines (no NspawnOnTest).
    [TestMethod]
    public void The_tests_API_is_there() => Assert.AreEqual("Nspawn.Testing", typeof(EphemeralMachine).Namespace);
}
