#!/usr/bin/env bash
# Packs Nspawn.Build into artifacts/feed with a version of its own, then runs the sample suite
# (tests/Sample) with 'dotnet build -t:ContainerTest' in real systemd-nspawn machines, from a fresh
# NuGet cache, exactly as a user's project gets the package. At the end it lets go of the loop mount.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/prereqs.sh
version="0.1.0-sample.$(date -u +%Y%m%d%H%M%S)"
export NUGET_PACKAGES="$(mktemp -d /tmp/nspawn-sample-nuget.XXXXXX)"
trap 'dotnet msbuild tests/Sample -t:NspawnUnmount -p:NspawnBuildVersion="$version" -v:q -nologo >/dev/null 2>&1 || true; rm -rf "$NUGET_PACKAGES"' EXIT
dotnet pack src/Nspawn.Build -c Release -p:Version="$version" -p:NspawnNativeAgent=true -v:q -nologo
dotnet build tests/Sample -t:ContainerTest -p:NspawnBuildVersion="$version" "$@"
