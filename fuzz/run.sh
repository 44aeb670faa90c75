#!/usr/bin/env bash
# Runs each fuzz target for a fixed time and prints executions, exec/s and
# crashes per target.
#   fuzz/run.sh SECONDS [TARGET...]   every target (or those named), one at a time
#   FUZZ_SANITIZER=address fuzz/run.sh ...   with AddressSanitizer (default: none;
#                                            Peregrine's Rust is memory-safe, the
#                                            FFmpeg FFI path is what ASan adds)
# Seeds come from the test data ($PEREGRINE_TEST_DATA, else ../shared/data) and
# the fixtures, written into fuzz/corpus/<target>/ (git-ignored) on each run;
# what libFuzzer finds is kept there. Crash inputs land in
# fuzz/artifacts/<target>/; a fixed one goes to fuzz/regressions/<target>/ for
# the replay test. Memory is bounded per input: -rss_limit_mb (and
# -malloc_limit_mb under ASan).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
export PEREGRINE_TEST_DATA=${PEREGRINE_TEST_DATA:-$(cd .. && pwd)/shared/data}
SAN=${FUZZ_SANITIZER:-none}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
# Built as `cargo test` builds it (dev-dependency features included), so the
# replay test's build is reused.
cargo build -q --locked -p peregrine-fuzzing --all-targets
target/debug/fuzz-seeds fuzz/corpus "${targets[@]}"
# cargo fuzz passes nightly-only flags; the project builds with stable.
# (Set here only: for the seeds build above it would change every
# fingerprint and rebuild the workspace.)
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build -O -s "$SAN")
limits=(-rss_limit_mb=2048 -timeout=20 -max_len=262144)
[ "$SAN" = address ] && limits+=(-malloc_limit_mb=1024)
printf '%-12s %8s %12s %10s %8s\n' target seconds executions exec/s crashes
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/$t"
  log="fuzz/artifacts/$t/last-run.log"
  set +e
  (cd fuzz && cargo fuzz run -O -s "$SAN" "$t" "corpus/$t" -- "${limits[@]}" \
     -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
     -artifact_prefix="artifacts/$t/") >"$log" 2>&1
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  secs=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "fuzz/artifacts/$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
  printf '%-12s %8s %12s %10s %8s\n' "$t" "$SECONDS_EACH" "${execs:-?}" "${secs:-?}" "$crashes"
done
