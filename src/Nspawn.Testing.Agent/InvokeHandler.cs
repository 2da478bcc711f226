using System.Reflection;
using System.Text.Json;
using Nspawn.Build.Agent;

namespace Nspawn.Testing.Agent;

/// <summary>
/// Calls a public static method of a test's assembly (bound read-only at the same path as on the host) with
/// arguments as JSON, and returns its result as JSON or what it threw.
/// </summary>
internal static class InvokeHandler
{
    private static readonly Dictionary<string, (DateTime Written, CodeContext Context)> Contexts = [];

    public static async Task<AgentReply> RunAsync(AgentRequest request)
    {
        var path = request.Assembly ?? throw new ArgumentException("No assembly.");
        var context = ContextFor(path);
        MethodInfo method;
        object?[] arguments;
        using (context.EnterContextualReflection())
        {
            var type = context.LoadFromAssemblyPath(path).GetType(request.Type ?? "", throwOnError: true)!;
            var parameterTypes = (request.ParameterTypes ?? []).Select(name => Type.GetType(name, throwOnError: true)!).ToArray();
            method = type.GetMethod(request.Method ?? "", BindingFlags.Public | BindingFlags.Static, parameterTypes)
                ?? throw new MissingMethodException(type.FullName, request.Method);
            var json = request.Arguments ?? [];
            arguments = parameterTypes.Select((t, i) => JsonSerializer.Deserialize(json[i], t)).ToArray();
        }

        object? result;
        var resultType = method.ReturnType;
        try
        {
            using (context.EnterContextualReflection())
            {
                result = method.Invoke(null, arguments);
                if (result is Task task)
                {
                    await task;
                    resultType = resultType.IsGenericType ? resultType.GetGenericArguments()[0] : typeof(void);
                    result = resultType == typeof(void) ? null : task.GetType().GetProperty("Result")!.GetValue(task);
                }
            }
        }
        catch (TargetInvocationException e) when (e.InnerException is { } thrown)
        {
            return Connection.Failure(thrown, AgentReply.Guest);
        }
        catch (Exception e)
        {
            // Thrown by the awaited task.
            return Connection.Failure(e, AgentReply.Guest);
        }
        if (resultType == typeof(void))
            return new AgentReply { Ok = true };
        try
        {
            return new AgentReply { Ok = true, Json = JsonSerializer.Serialize(result, resultType) };
        }
        catch (Exception e) when (e is NotSupportedException or JsonException or InvalidOperationException)
        {
            return Connection.Failure(e, AgentReply.Result);
        }
    }

    private static CodeContext ContextFor(string path)
    {
        var written = File.GetLastWriteTimeUtc(path);
        lock (Contexts)
        {
            if (Contexts.TryGetValue(path, out var known) && known.Written == written)
                return known.Context;
            known.Context?.Unload();
            var context = new CodeContext(path);
            Contexts[path] = (written, context);
            return context;
        }
    }
}
