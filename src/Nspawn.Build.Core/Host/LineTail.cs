namespace Nspawn.Build;

/// <summary>The last lines of a stream (a guest's console, debootstrap's output), for error messages. Thread-safe.</summary>
internal sealed class LineTail(int capacity)
{
    private readonly Queue<string> _lines = new();

    public void Add(string line)
    {
        lock (_lines)
        {
            _lines.Enqueue(line);
            while (_lines.Count > capacity)
                _lines.Dequeue();
        }
    }

    public override string ToString()
    {
        lock (_lines)
            return string.Join('\n', _lines);
    }
}
