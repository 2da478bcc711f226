using System.Linq.Expressions;
using System.Reflection;
using System.Text.Json;
using Nspawn.Build.Agent;

namespace Nspawn.Testing;

/// <summary>
/// What InvokeAsync sends: a call of a public static method, its arguments evaluated on the host and serialized
/// as JSON, and where its assembly is (the tests' output folder, which the machine has at the same path).
/// </summary>
internal static class InvokeCall
{
    public static AgentRequest From(LambdaExpression call, string? codeDir)
    {
        if (call.Body is not MethodCallExpression body)
            throw new ArgumentException($"InvokeAsync takes a single call of a public static method, such as '() => Provisioner.Apply(config)'; '{call.Body}' is not one.", nameof(call));
        var method = body.Method;
        var type = method.DeclaringType!;
        var name = $"{type.FullName}.{method.Name}";
        if (!method.IsStatic)
            throw new ArgumentException($"'{name}' is an instance method: InvokeAsync runs a public static method in the machine, where no object of the test exists. Make it static and pass what it needs as arguments.", nameof(call));
        if (!method.IsPublic || !type.IsVisible)
            throw new ArgumentException($"'{name}' is not a public static method of a public type: the machine can call only those.", nameof(call));
        if (method.IsGenericMethod)
            throw new NotSupportedException($"'{name}' is generic: InvokeAsync calls non-generic methods; wrap it in one.");
        var parameters = method.GetParameters();
        if (parameters.FirstOrDefault(p => p.ParameterType.IsByRef || p.ParameterType.IsPointer) is { } byRef)
            throw new NotSupportedException($"Parameter '{byRef.Name}' of '{name}' is passed by reference or is a pointer: only values can be sent to the machine.");
        var location = type.Assembly.Location;
        var folder = codeDir is null ? null : codeDir.TrimEnd('/') + "/";
        if (folder is null || location.Length == 0 || !location.StartsWith(folder, StringComparison.Ordinal))
            throw new NotSupportedException($"'{name}' is in '{(location.Length == 0 ? "an assembly loaded from memory" : location)}', outside the tests' output folder{(folder is null ? "" : $" '{folder}'")} that the machine has: InvokeAsync calls methods of the test assembly and its dependencies.");

        var arguments = new List<string>();
        for (var i = 0; i < parameters.Length; i++)
        {
            var value = Evaluate(body.Arguments[i]);
            try
            {
                arguments.Add(JsonSerializer.Serialize(value, parameters[i].ParameterType));
            }
            catch (Exception e) when (e is NotSupportedException or JsonException or InvalidOperationException or ArgumentException)
            {
                throw new NotSupportedException($"Argument '{parameters[i].Name}' of '{name}' ({parameters[i].ParameterType}) cannot be sent to the machine as JSON: {e.Message}", e);
            }
        }
        return new AgentRequest(AgentRequest.Invoke)
        {
            Assembly = location, Type = type.FullName, Method = method.Name,
            ParameterTypes = parameters.Select(p => p.ParameterType.AssemblyQualifiedName!).ToList(), Arguments = arguments,
        };
    }

    /// <summary>An argument's value, computed on the host (a constant, a captured variable, any expression).</summary>
    private static object? Evaluate(Expression argument) => argument is ConstantExpression constant ? constant.Value
        : Expression.Lambda<Func<object?>>(Expression.Convert(argument, typeof(object))).Compile(preferInterpretation: true)();

    /// <summary>The result sent back, read as <typeparamref name="T"/>.</summary>
    public static T Result<T>(string? json, string method)
    {
        try
        {
            return json is null ? default! : JsonSerializer.Deserialize<T>(json)!;
        }
        catch (Exception e) when (e is NotSupportedException or JsonException or InvalidOperationException)
        {
            throw new NotSupportedException($"The result of '{method}' ({typeof(T)}) cannot be read back from JSON: {e.Message}", e);
        }
    }
}
