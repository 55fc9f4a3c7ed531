#!/usr/bin/env bash
# Runs weft's benchmark suite beside its peers (Go, pthreads) and prints one
# table with ratios; installs missing Debian packages when run as root.
#   scripts/bench.sh            full suite, 5 repetitions (medians)
#   scripts/bench.sh --quick    tiny sizes, one repetition (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
weft_require "${WEFT_BENCH_PACKAGES[@]}"
exec bench/run.sh "$@"
