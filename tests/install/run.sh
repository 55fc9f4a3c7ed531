#!/usr/bin/env bash
# Installs weft into a temporary prefix, then builds and runs a tiny consumer
# through find_package(weft) and through pkg-config.
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cat >"$tmp/consumer.c" <<'C'
#include <weft.h>
#include <stdio.h>
static int child(void *arg) { return (int)(long)arg + 1; }
static int root(void *arg) {
    (void)arg;
    weft_task *t;
    int st = 0;
    if (weft_spawn(&t, child, (void *)41) || weft_join(t, &st)) return -1;
    return st;
}
int main(void) {
    int st = 0;
    if (weft_run(NULL, root, NULL, &st) || st != 42) { puts("consumer: FAIL"); return 1; }
    puts("consumer: ok");
    return 0;
}
C
mkdir -p "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(weft CONFIG REQUIRED)
add_executable(consumer_shared ../consumer.c)
target_link_libraries(consumer_shared PRIVATE weft::weft)
add_executable(consumer_static ../consumer.c)
target_link_libraries(consumer_static PRIVATE weft::weft_static)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib/$(uname -m)-linux-gnu" "$tmp/cm/build/consumer_shared"
"$tmp/cm/build/consumer_static"
pcdir=$(dirname "$(find "$tmp/prefix" -name weft.pc | head -n1)")
export PKG_CONFIG_PATH="$pcdir"
${CC:-cc} "$tmp/consumer.c" -o "$tmp/consumer_pc" $(pkg-config --cflags --libs weft) -Wl,-rpath,"$(pkg-config --variable=libdir weft)"
"$tmp/consumer_pc"
${CC:-cc} "$tmp/consumer.c" -o "$tmp/consumer_pc_static" $(pkg-config --cflags weft) -DWEFT_STATIC_DEFINE \
  "$(pkg-config --variable=libdir weft)/libweft.a" $(pkg-config --libs --static weft | sed 's/-lweft//')
"$tmp/consumer_pc_static"
echo "install_consumer: find_package and pkg-config consumers ran"
