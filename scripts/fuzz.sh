#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/fuzz_targets for a bounded time, starting from the
# committed seeds in fuzz/corpus/<target>. A crash, a hang or a broken invariant fails the run
# and names the reproducer. scripts/test.sh (CI) runs it with the default time.
#
# Usage: scripts/fuzz.sh [-t SECONDS] [TARGET...]     (default: every target; also SECONDS alone)
#   -t SECONDS / KOVS_FUZZ_SECONDS   time per target (default 30); e.g. -t 3600 for a long run
#   KOVS_FUZZ_ARGS                   more libFuzzer flags, e.g. "-jobs=2 -workers=2"
#
# New inputs found go to fuzz/target/corpus/<target> (kept between runs, not committed);
# crashes to fuzz/artifacts/<target>/. Reproduce one with
#   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -a <target> <artifact>
#
# cargo-fuzz is built once per machine at a pinned version (scripts/cargo-fuzz.sh, into
# ~/.cache/kovs/bin/cargo-fuzz-<version>). It needs nightly compiler flags
# (-Zsanitizer=address, sanitizer coverage): RUSTC_BOOTSTRAP=1 lets the stable toolchain a fresh
# machine has accept them; stable ships the address sanitizer's runtime for x86_64 Linux.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${KOVS_FUZZ_SECONDS:-30}"
# The older form, `scripts/fuzz.sh SECONDS`, still works.
case "${1:-}" in
  [0-9]*) seconds="$1"; shift ;;
esac
while getopts "t:" opt; do
  case "$opt" in
    t) seconds="$OPTARG" ;;
    *) sed -n '2,10p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
case "$seconds" in
  ''|*[!0-9]*) echo "fuzz.sh: -t wants whole seconds, not \`$seconds\`" >&2; exit 2 ;;
esac

cargo_fuzz=$(scripts/cargo-fuzz.sh)
export PATH="$(dirname "$cargo_fuzz"):$PATH"
export RUSTC_BOOTSTRAP=1

sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
if ! ls "$sysroot/lib/rustlib/$host/lib/"librustc-*_rt.asan.a >/dev/null 2>&1; then
  echo "fuzz.sh: the toolchain at $sysroot has no address sanitizer runtime for $host" >&2
  exit 1
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_targets/*.rs; do
    targets+=("$(basename "$f" .rs)")
  done
fi

cd fuzz
# -a: debug assertions and overflow checks, so an arithmetic overflow is a crash too.
cargo fuzz build -a
passed=0
failed=()
for t in "${targets[@]}"; do
  [ -f "fuzz_targets/$t.rs" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
  seeds="corpus/$t"
  work="target/corpus/$t"
  mkdir -p "$work" "$seeds" "artifacts/$t"
  log="target/fuzz-$t.log"
  echo "fuzz: $t for ${seconds}s ($(ls "$seeds" | wc -l) seeds)"
  # New inputs go to the first directory; the committed seeds are only read.
  # shellcheck disable=SC2086
  if cargo fuzz run -a "$t" "$work" "$seeds" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 ${KOVS_FUZZ_ARGS:-} \
      >"$log" 2>&1; then
    passed=$((passed + 1))
    grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$log" \
      | sed "s/^/fuzz: $t /"
  else
    failed+=("$t")
    tail -n 60 "$log" >&2
    artifact=$(sed -n 's/.*Test unit written to \(\S*\).*/\1/p' "$log" | tail -n 1)
    echo "fuzz: $t FAILED (log: fuzz/$log)" >&2
    if [ -n "$artifact" ]; then
      case "$artifact" in /*) ;; *) artifact="$PWD/${artifact#./}" ;; esac
      echo "fuzz: reproducer: $artifact" >&2
      echo "fuzz: reproduce with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -a $t $artifact" >&2
    fi
  fi
done
echo "fuzz: ${passed} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
