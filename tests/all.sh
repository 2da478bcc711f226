#!/usr/bin/env bash
# All tests: unit tests, the launcher on real machines, and ContainerTest on the sample through the packed
# package. Results (TRX) go to artifacts/test-results. The suite unmounts what it mounted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/prereqs.sh
rm -rf artifacts/test-results
dotnet test Nspawn.Build.sln --logger "trx;LogFileName=results.trx" --results-directory artifacts/test-results "$@"
