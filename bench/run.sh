#!/usr/bin/env bash
# The benchmark suite: builds weft's benchmark programs and the Go peers, runs
# each (weft and its peers side by side in one run), and prints one table of
# medians and ratios; writes out/bench/results.{txt,json} and ratios.png.
# Usage: bench/run.sh [--quick] [--reps N]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=5
quick=""
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=--quick; reps=1; shift ;;
    --reps) reps=$2; shift 2 ;;
    *) echo "usage: $0 [--quick] [--reps N]" >&2; exit 2 ;;
    esac
done
jobs=$(nproc)
dir=build/bench
out=out/bench
mkdir -p "$out" "$dir/go"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_BENCH=ON >/dev/null
cmake --build "$dir" -j "$jobs"

export GOCACHE=$PWD/$dir/go/cache GOPATH=$PWD/$dir/go/path GOFLAGS=-mod=mod GO111MODULE=off
for b in switch spawn_join skynet fib wake memory cancel lock chan; do
    go build -o "$dir/go/$b" bench/go/$b.go bench/go/common.go
done
go build -o "$dir/go/report" bench/report/report.go

results=$out/results.txt
: >"$results"
args=(${quick})
[ -z "$quick" ] && args=(--reps "$reps")
{
    echo "# weft benchmark suite, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $(go version)"
    echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
} >>"$results"
for b in switch spawn_join skynet fib wake memory cancel lock chan; do
    echo "weft: running $b" >&2
    "$dir/bench/bench_$b" "${args[@]}" | tee -a "$results"
    "$dir/go/$b" "-reps=$reps" ${quick:+-quick} | tee -a "$results"
done
echo
"$dir/go/report" -in "$results" -json "$out/results.json" -png "$out/ratios.png"
echo "weft: results in $out/results.txt, $out/results.json, $out/ratios.png"
