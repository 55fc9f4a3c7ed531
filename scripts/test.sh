#!/usr/bin/env bash
# Runs weft's tests: builds with -Werror, runs the Criterion suites, the
# spin model check of the waiter protocol, the install-and-consume test and
# the stress tier (bounded in time), through
# CTest.  Installs missing Debian packages when run as root.
#
#   scripts/test.sh                              the full test command
#   scripts/test.sh --sanitize address,undefined Criterion suites under ASan+UBSan
#   scripts/test.sh --sanitize thread            stress programs under TSan
#   scripts/test.sh --seconds N --seed N         stress duration and seed
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

sanitize=""
seconds=${WEFT_STRESS_SECONDS:-10}
seed=${WEFT_STRESS_SEED:-$(date +%s)}
while [ $# -gt 0 ]; do
    case $1 in
    --sanitize) sanitize=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) echo "usage: $0 [--sanitize address,undefined|thread] [--seconds N] [--seed N]" >&2; exit 2 ;;
    esac
done

weft_require "${WEFT_TEST_PACKAGES[@]}"
jobs=$(nproc)
dir=build/test${sanitize:+-${sanitize//,/-}}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_WERROR=ON -DWEFT_BUILD_BENCH=OFF \
    -DWEFT_SANITIZE="$sanitize" -DWEFT_STRESS_SECONDS="$seconds" -DWEFT_STRESS_SEED="$seed" >/dev/null
cmake --build "$dir" -j "$jobs"

echo "weft: stress seed $seed, $seconds s per stress program (replay with --seed $seed)"
case $sanitize in
"") labels='unit|model|install|stress' ;;
# Criterion cannot start under ThreadSanitizer (ARCHITECTURE.md, known
# traps): the stress programs, which have their own main, are the TSan tier.
thread) labels='stress' ;;
*) labels='unit' ;;
esac
if [ "$labels" != stress ]; then
    ctest --test-dir "$dir" --output-on-failure -L "$labels" -LE stress
fi
if [[ $labels == *stress* ]]; then
    # One at a time (they are timed and use every core), showing all they
    # print: their counts, and any sanitizer report in full.
    ctest --test-dir "$dir" --output-on-failure -L stress -V |
        grep -vE '^(UpdateCTestConfiguration|Parse Config|Test project|Constructing|Checking test|Updating test|Test command|Environment variables|Test timeout|Internal ctest|Add test|Done constructing)|^[0-9]+: Test (command|timeout)|^$'
fi
