#!/bin/sh
# Runs a libFuzzer binary briefly on a fresh corpus directory; exits 77 (skipped) when the
# binary could not be built because clang is missing. Usage: run_fuzz.sh BINARY SECONDS
bin=$1
seconds=$2
if [ ! -x "$bin" ]; then
  echo "skipped: $bin was not built (clang++ with -fsanitize=fuzzer is missing; run scripts/setup)"
  exit 77
fi
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
exec "$bin" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=1024 "$corpus"
