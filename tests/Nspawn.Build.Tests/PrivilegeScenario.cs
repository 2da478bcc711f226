using System.Runtime.InteropServices;

namespace Nspawn.Build.Tests;

/// <summary>
/// Real threads taking Root() and User() scopes of <see cref="ProcessPrivileges"/> in a process started as
/// root with a sudo user (see <see cref="PrivilegeTests"/>). Each check prints "ok NAME" or "FAIL NAME: why".
/// </summary>
internal static class PrivilegeScenario
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [DllImport("libc")] private static extern uint geteuid();

    public static int Run()
    {
        var p = ProcessPrivileges.Current;
        var user = p.UserId ?? throw new InvalidOperationException("start this with SUDO_UID and SUDO_GID set, as root");
        p.Drop();
        var failures = 0;
        void Check(string name, bool ok, string detail)
        {
            Console.WriteLine(ok ? $"ok {name}" : $"FAIL {name}: {detail}");
            failures += ok ? 0 : 1;
        }

        Check("dropped", geteuid() == user, $"euid {geteuid()}");
        var (waited, inScope) = OtherThreadWaits(p, holder: p.Root, waiter: p.User);
        Check("user-waits-for-root-of-another-thread", waited, "User() returned while another thread was inside Root()");
        Check("user-scope-runs-as-user", inScope == user, $"euid {inScope} inside User()");
        Check("dropped-when-no-scope-is-open", geteuid() == user, $"euid {geteuid()} with no scope open: the process is left with more privilege than asked for");

        (waited, inScope) = OtherThreadWaits(p, holder: p.User, waiter: p.Root);
        Check("root-waits-for-user-of-another-thread", waited, "Root() returned while another thread was inside User()");
        Check("root-scope-runs-as-root", inScope == 0, $"euid {inScope} inside Root()");
        Check("dropped-when-no-scope-is-open-again", geteuid() == user, $"euid {geteuid()}");

        uint inner, outer;
        using (p.Root())
        {
            using (p.User())
                inner = geteuid();
            outer = geteuid();
        }
        Check("nested-on-one-thread", inner == user && outer == 0 && geteuid() == user, $"User() in Root(): {inner}, then {outer}, then {geteuid()}");

        Check("a-nested-scope-that-would-wait-fails-instead", NestedWaitFails(p, out var euid), $"User() inside Root() did not fail while another thread was inside Root(); euid {euid}");

        var (violations, refused, granted) = Crowd(p, user);
        Check("many-threads-each-scope-gets-what-it-asked-for", violations == 0 && granted > 1000, $"{violations} scopes ran with the wrong user, of {granted}");
        Check("dropped-after-the-crowd", geteuid() == user, $"euid {geteuid()}");
        Console.WriteLine($"crowd: {granted} scopes granted, {refused} nested scopes refused");
        return failures == 0 ? 0 : 1;
    }

    /// <summary>
    /// One thread holds a scope; another asks for the other kind and keeps it until after the first closed.
    /// Did the second wait for the first, and what did it get?
    /// </summary>
    private static (bool Waited, uint InScope) OtherThreadWaits(ProcessPrivileges p, Func<IDisposable> holder, Func<IDisposable> waiter)
    {
        using var held = new ManualResetEventSlim();
        using var releaseFirst = new ManualResetEventSlim();
        using var granted = new ManualResetEventSlim();
        using var releaseSecond = new ManualResetEventSlim();
        uint inScope = uint.MaxValue;
        var first = new Thread(() =>
        {
            using (holder())
            {
                held.Set();
                releaseFirst.Wait(Patience);
            }
        });
        var second = new Thread(() =>
        {
            held.Wait(Patience);
            using (waiter())
            {
                inScope = geteuid();
                granted.Set();
                releaseSecond.Wait(Patience);
            }
        });
        first.Start();
        second.Start();
        held.Wait(Patience);
        // Not a timing assertion: a scope granted while the other is open is a failure whenever it is seen.
        var early = granted.Wait(TimeSpan.FromMilliseconds(500));
        releaseFirst.Set();
        first.Join();
        granted.Wait(Patience);
        releaseSecond.Set();
        second.Join();
        return (!early, inScope);
    }

    /// <summary>Another thread is inside Root(); this one, inside Root() too, asks for User(), which would have to wait for the other.</summary>
    private static bool NestedWaitFails(ProcessPrivileges p, out uint euid)
    {
        using var held = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var other = new Thread(() =>
        {
            using (p.Root())
            {
                held.Set();
                release.Wait(Patience);
            }
        });
        other.Start();
        held.Wait(Patience);
        var failed = false;
        using (p.Root())
        {
            try
            {
                using (p.User())
                {
                }
            }
            catch (InvalidOperationException)
            {
                failed = true;
            }
            euid = geteuid();
        }
        release.Set();
        other.Join();
        return failed && euid == 0;
    }

    /// <summary>Eight threads, each opening scopes of random kinds, sometimes one of the other kind inside; each checks its own euid.</summary>
    private static (int Violations, int Refused, int Granted) Crowd(ProcessPrivileges p, uint user)
    {
        int violations = 0, refused = 0, granted = 0;
        var threads = Enumerable.Range(0, 8).Select(seed => new Thread(() =>
        {
            var random = new Random(seed);
            for (var i = 0; i < 300; i++)
            {
                var root = random.Next(2) == 0;
                using (root ? p.Root() : p.User())
                {
                    Interlocked.Increment(ref granted);
                    if (geteuid() != (root ? 0 : user))
                        Interlocked.Increment(ref violations);
                    Thread.SpinWait(random.Next(2000));
                    if (random.Next(4) == 0)
                    {
                        try
                        {
                            using (root ? p.User() : p.Root())
                            {
                                Interlocked.Increment(ref granted);
                                if (geteuid() != (root ? user : 0))
                                    Interlocked.Increment(ref violations);
                            }
                        }
                        catch (InvalidOperationException)
                        {
                            Interlocked.Increment(ref refused);
                        }
                    }
                    if (geteuid() != (root ? 0 : user))
                        Interlocked.Increment(ref violations);
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        return (violations, refused, granted);
    }
}
