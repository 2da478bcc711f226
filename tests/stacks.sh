#!/usr/bin/env bash
# Every test stack a user has (tests/Stacks), against the packed package: no root, no machine booted.
#
# Packs Nspawn.Build into a fresh folder feed, copies each stack there and, with a fresh NuGet cache, checks:
#   - plain 'dotnet test' (no NspawnOnTest: nothing boots) compiles the stack and its test passes;
#   - the tests' API (lib/net8.0/Nspawn.Testing.dll) is referenced; the MTP extension and its
#     TestingPlatformBuilderHook item only in MTP applications, and the build for their MTP major
#     (testingplatform/v1 or v2); a VSTest project gets neither;
#   - in MTP applications, MTP itself calls the extension: a launch file that holds 'null' makes the
#     extension fail the run with its stack trace (it throws while reading it, before anything is created);
#   - ContainerTest's first check (_NspawnCheckTestingPlatform) fails with NSPAWN0051 for an MTP application
#     whose Microsoft.Testing.Platform.MSBuild is older than 2.4 (the MTP 1 stacks), and passes the others.
# Needs SDK 10 (the MTP stacks' global.json puts dotnet test in MTP mode) and nuget.org. A few minutes on 2 cores.
# Usage: bash tests/stacks.sh [STACK...]   (default: all). The work folder, with each step's log, is removed
# when every check passed, unless NSPAWN_STACKS_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

# Stack, and the build of the extension it must get (v1: MTP 1.x, v2: MTP 2.x, -: a VSTest project).
all=("XunitV3Mtp1 v1" "XunitV3Mtp2 v2" "MstestMtp1 v1" "MstestMtp2 v2" "MstestVSTest -" "Nunit5 -" "Nunit6 -" "Xunit2 -")
hook=3F0C7E52-9B1D-4B6A-8D2E-5A41C6E0B7D9

work=$(mktemp -d /tmp/nspawn-stacks.XXXXXX)
version=0.1.0-stacks.$(date -u +%Y%m%d%H%M%S)
export NUGET_PACKAGES=$work/nuget
echo "Packing Nspawn.Build $version into $work/feed"
dotnet pack src/Nspawn.Build -c Release -p:Version="$version" -o "$work/feed" -v q -nologo >"$work/pack.log" 2>&1 || { cat "$work/pack.log"; exit 1; }
cp -r tests/Stacks/. "$work/"
cat >"$work/nuget.config" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$work/feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
</configuration>
EOF

passed=0 failed=0
ok() { echo "  ok: $1"; passed=$((passed + 1)); }
bad() { echo "  FAILED: $1 (see $2)"; failed=$((failed + 1)); }
# expect DESCRIPTION LOG COMMAND...: the command succeeds.
expect() { local what=$1 log=$2; shift 2; if "$@" >>"$log" 2>&1; then ok "$what"; else bad "$what" "$log"; fi; }

for entry in "${all[@]}"; do
  read -r stack build <<<"$entry"
  [ $# -gt 0 ] && [[ " $* " != *" $stack "* ]] && continue
  echo "$stack ($([ "$build" = - ] && echo VSTest || echo "MTP, extension $build"))"
  dir=$work/$stack log=$work/$stack.log
  cd "$dir"
  expect "dotnet test compiles and passes" "$log" dotnet test -p:NspawnBuildVersion="$version"

  dotnet msbuild -t:ResolveReferences -getItem:ReferencePath -getItem:TestingPlatformBuilderHook -p:NspawnBuildVersion="$version" >"$work/$stack.items.json" 2>>"$log" || true
  items=$work/$stack.items.json
  expect "references the tests' API" "$items" grep -q "lib/net8.0/Nspawn.Testing.dll" "$items"
  if [ "$build" = - ]; then
    expect "no reference to the MTP extension" "$items" bash -c "! grep -q Nspawn.Testing.Platform '$items'"
    expect "no TestingPlatformBuilderHook of the package" "$items" bash -c "! grep -q $hook '$items'"
  else
    expect "references the MTP extension's $build build" "$items" grep -q "testingplatform/$build/Nspawn.Testing.Platform.dll" "$items"
    expect "has the package's TestingPlatformBuilderHook" "$items" grep -q "$hook" "$items"

    # A launch file MTP's extension cannot read: the run fails in the extension, which shows it was loaded and called.
    launch=$(dirname "$(dotnet msbuild -getProperty:TargetPath -p:NspawnBuildVersion="$version")")/$stack.nspawn.json
    echo null >"$launch"
    dotnet test --no-build -p:NspawnBuildVersion="$version" >"$work/$stack.probe.log" 2>&1 || true
    rm -f "$launch"
    expect "MTP calls the extension (MachinesExtension.IsEnabledAsync in the failed run)" "$work/$stack.probe.log" grep -q "Nspawn.Testing.Platform.MachinesExtension.IsEnabledAsync" "$work/$stack.probe.log"

    check=$work/$stack.check.log
    if dotnet msbuild -t:_NspawnCheckTestingPlatform -p:NspawnBuildVersion="$version" >"$check" 2>&1; then result=passed; else result=failed; fi
    if [ "$build" = v1 ]; then
      [ $result = failed ] && grep -q "error NSPAWN0051: .*Microsoft.Testing.Platform.MSBuild 2.4" "$check" \
        && ok "ContainerTest's check fails with NSPAWN0051 (Microsoft.Testing.Platform.MSBuild < 2.4)" || bad "ContainerTest's check fails with NSPAWN0051" "$check"
    else
      [ $result = passed ] && ok "ContainerTest's check passes (Microsoft.Testing.Platform.MSBuild >= 2.4)" || bad "ContainerTest's check passes" "$check"
    fi
  fi
  cd - >/dev/null
done

echo "stacks: $passed passed, $failed failed"
if [ "$failed" -eq 0 ] && [ "${NSPAWN_STACKS_KEEP:-}" != 1 ]; then rm -rf "$work"; else echo "kept $work"; fi
[ "$failed" -eq 0 ]
