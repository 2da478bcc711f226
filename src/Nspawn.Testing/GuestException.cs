namespace Nspawn.Testing;

/// <summary>What a method run in a machine by InvokeAsync threw there: its type, message and the guest's stack trace.</summary>
public sealed class GuestException : Exception
{
    public GuestException(string guestType, string guestMessage, string? guestStackTrace)
        : base($"{guestType} in the machine: {guestMessage}")
    {
        GuestType = guestType;
        GuestMessage = guestMessage;
        GuestStackTrace = guestStackTrace;
    }

    /// <summary>The full name of the exception's type, such as System.InvalidOperationException.</summary>
    public string GuestType { get; }
    public string GuestMessage { get; }
    /// <summary>Where it was thrown, in the machine.</summary>
    public string? GuestStackTrace { get; }

    public override string ToString() => $"{base.ToString()}\n--- in the machine ---\n{GuestStackTrace}";
}
