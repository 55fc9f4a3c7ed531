#!/bin/bash
# Model-checks the waiter protocol (waiter.pml) with spin: the protocol must
# pass on one and on two waiters, and each deliberately broken variant must
# fail (so the model is known to catch what it claims to).
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)/waiter.pml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$src" .

check() { # expect(pass|fail) defines...
    local expect=$1
    shift
    spin -a "$@" waiter.pml >/dev/null
    ${CC:-cc} -O2 -DSAFETY -w -o pan pan.c
    local out errors
    out=$(./pan -m1000000 2>&1)
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' <<<"$out")
    local states
    states=$(sed -n 's/^ *\([0-9]*\) states, stored.*/\1/p' <<<"$out")
    if [[ $expect == pass && $errors == 0 ]] || [[ $expect == fail && $errors != 0 ]]; then
        echo "ok: $* ($expect: $errors errors, $states states)"
        [[ $expect == fail ]] && grep -m1 'violated\|invalid end' <<<"$out" | sed 's/^/    /'
        return 0
    fi
    echo "FAILED: $* expected $expect, got $errors errors"
    echo "$out"
    return 1
}

check pass -DNW=1
check pass -DNW=2
check fail -DNW=1 -DBROKEN_CAS
check fail -DNW=2 -DBROKEN_CAS
check fail -DNW=1 -DBROKEN_PUBLISH
check fail -DNW=2 -DBROKEN_PUBLISH
