# Sourced by scripts/test.sh and scripts/bench.sh: makes sure the Debian
# packages weft needs are installed.  As root it installs what is missing;
# otherwise it prints the exact apt-get line and stops.
weft_require() {
    local missing=()
    local p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "weft: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
            apt-get update && apt-get install -y --no-install-recommends "${missing[@]}" || {
                echo "weft: could not install ${missing[*]}" >&2
                exit 1
            }
        fi
    else
        echo "weft: missing Debian packages. Run:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
}

# What building and testing weft needs on a fresh Debian 12.
WEFT_TEST_PACKAGES=(gcc libc6-dev make cmake pkg-config liburcu-dev libcriterion-dev spin)
# The benchmark suite adds the Go toolchain for the Go peers.
WEFT_BENCH_PACKAGES=("${WEFT_TEST_PACKAGES[@]}" golang-go)
