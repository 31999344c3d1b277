#!/usr/bin/env bash
# The candle version matrix: the same suite and op-consistency sweep, built against every version in matrix/versions.txt,
# each with its own lock file (matrix/locks/<version>.lock, committed) and target dir, then one
# report: reports/matrix.{md,json} (case × version × backend → verdict, "fixed in"/"regressed in").
#
#   scripts/matrix.sh build [--cuda] [--only V,V]       # build target/matrix/<v>/repro for every version
#   scripts/matrix.sh run --device cpu|cuda [--only V,V] # run each build's suite into target/matrix/<v>/reports
#   scripts/matrix.sh report                     # write reports/matrix.{md,json} from every run found
#   scripts/matrix.sh all [--device cpu]         # build + run + report (CPU)
#
# CUDA builds need a cudarc that knows the toolkit: with a CUDA 13 toolkit that is candle >= 0.9.2
# (cudarc 0.17); older releases pin cudarc <= 0.16, whose build script stops with "Unsupported
# cuda toolkit version", so build those with --only left out of the list.
#
# MATRIX_DIR (default target/matrix) holds sources, builds and runs. The only per-version edit is
# the two candle pins in the copied root Cargo.toml. The pseudo-version `patched` is the pin with
# patches/candle-<pin>/ applied, built by scripts/patched.sh ([patch.crates-io] to patched copies
# of the registry sources); its suite and sweep exit 3 where a patch removed a known divergence.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${MATRIX_DIR:-$root/target/matrix}
versions=$(grep -v '^#' "$root/matrix/versions.txt" | grep -v '^ *$' | grep -vx patched || true)
# `patched` always comes last (after a release the bump workflow appends), so that its
# transitions are from the pin.
if grep -qx patched "$root/matrix/versions.txt"; then versions="$versions patched"; fi
pinned=$(grep -m1 '^candle-core = ' "$root/Cargo.toml" | sed 's/.*"=\(.*\)"/\1/')
die() { echo "error: $*" >&2; exit 2; }
# older_than A B: version A sorts before version B.
older_than() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]; }

# --only V,V,...: restrict build/run to these versions of versions.txt.
only=""
selected() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

build() {
  local features="" suffix=""
  while [ $# -gt 0 ]; do
    case $1 in
      --cuda) features="--features cuda"; suffix="-cuda"; shift ;;
      --only) only=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  for v in $versions; do
    selected "$v" || continue
    local src=$work/$v/src out=$work/$v
    mkdir -p "$out"
    if [ "$v" = patched ]; then
      # The pinned version with patches/candle-<pin>/ applied (scripts/patched.sh): same target
      # dirs as the pin, the binary copied out at once.
      "$root/scripts/patched.sh" build ${features:+--cuda} > /dev/null
      cp "${PATCHED_DIR:-$root/target/patched}/bin/repro$suffix" "$out/repro$suffix"
      echo "built patched ($pinned + patches/candle-$pinned) -> $out/repro$suffix"
      continue
    fi
    if [ "$v" = "$pinned" ]; then
      # The checkout itself is this version: reuse its build (and target dir).
      local tdir=${CARGO_TARGET_DIR:-$root/target}
      [ -n "$features" ] && tdir=$root/target/cuda
      (cd "$root" && CARGO_TARGET_DIR=$tdir cargo build -q --release -p repro --bin repro $features)
      cp "$tdir/release/repro" "$out/repro$suffix"
      cp "$root/Cargo.lock" "$root/matrix/locks/$v.lock"
      echo "built $v (the checkout's pin) -> $out/repro$suffix"
      continue
    fi
    rm -rf "$src" && mkdir -p "$src"
    # The working tree as it is, untracked files that git does not ignore included.
    (cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar c) | tar x -C "$src"
    sed -i "s/^candle-core = \"=.*\"/candle-core = \"=$v\"/; s/^candle-nn = \"=.*\"/candle-nn = \"=$v\"/" "$src/Cargo.toml"
    if [ -f "$root/matrix/locks/$v.lock" ]; then
      cp "$root/matrix/locks/$v.lock" "$src/Cargo.lock"
    else
      rm -f "$src/Cargo.lock"
      (cd "$src" && cargo generate-lockfile -q)
      # candle < 0.8 samples f16/bf16 through rand_distr 0.4, whose traits half >= 2.5 no longer
      # implements (candle-core then fails to compile): lock half at 2.4.1 for those releases.
      if older_than "$v" 0.8.0; then (cd "$src" && cargo update -q -p half --precise 2.4.1); fi
    fi
    # `Tensor::scatter` is new in candle 0.9 and the i16/i32 dtypes in 0.9.2: older releases
    # build without the repro crate's default features `tensor-scatter` and `i16-i32` (their
    # sweep lists scatter as not swept, and sweeps no i16/i32 index or condition).
    local version_features=""
    if older_than "$v" 0.9.0; then version_features="--no-default-features"
    elif older_than "$v" 0.9.2; then version_features="--no-default-features --features tensor-scatter"; fi
    (cd "$src" && CARGO_TARGET_DIR=$out/target$suffix cargo build -q --release -p repro --bin repro $features $version_features)
    cp "$src/Cargo.lock" "$root/matrix/locks/$v.lock"
    cp "$out/target$suffix/release/repro" "$out/repro$suffix"
    echo "built $v -> $out/repro$suffix"
  done
}

run() {
  local device=cpu bins=$work
  while [ $# -gt 0 ]; do
    case $1 in
      --device) device=$2; shift 2 ;;
      --bins) bins=$2; shift 2 ;;
      --only) only=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  local suffix=""; [ "${device%%:*}" = cuda ] && suffix="-cuda"
  for v in $versions; do
    selected "$v" || continue
    local exe=$bins/$v/repro$suffix
    [ -x "$exe" ] || die "no build for $v at $exe (run: scripts/matrix.sh build${suffix:+ --cuda})"
    mkdir -p "$work/$v"
    set +e
    (cd "$root" && "$exe" run --device "$device" --report-dir "$work/$v/reports" > "$work/$v/suite-${device%%:*}.txt" 2>&1)
    local rc=$?
    set -e
    # 0: as the manifest expects; 3: some verdict differs (expected across versions).
    [ $rc = 0 ] || [ $rc = 3 ] || die "candle $v on $device: the suite exited $rc (see $work/$v/suite-${device%%:*}.txt)"
    echo "ran $v on $device: $(tail -n 1 "$work/$v/suite-${device%%:*}.txt")"
    # The op-consistency sweep of the same build, checked against this checkout's manifest
    # (exit 3 is expected where a version differs).
    set +e
    (cd "$root" && "$exe" sweep --device "$device" --report-dir "$work/$v/reports" \
      --manifest "$root/repro/sweep-known.toml" > "$work/$v/sweep-${device%%:*}.txt" 2>&1)
    rc=$?
    set -e
    [ $rc = 0 ] || [ $rc = 3 ] || die "candle $v on $device: the sweep exited $rc (see $work/$v/sweep-${device%%:*}.txt)"
    echo "swept $v on $device: $(grep 'distinct divergences' "$work/$v/sweep-${device%%:*}.txt")"
  done
}

report() {
  local args=()
  for v in $versions; do
    [ -d "$work/$v/reports" ] && args+=("$v=$work/$v/reports")
  done
  [ ${#args[@]} -gt 0 ] || die "no runs under $work (run: scripts/matrix.sh run --device cpu)"
  (cd "$root" && cargo run -q -p repro --release -- matrix-report --out reports "${args[@]}")
}

case "${1:-}" in
  build) shift; build "$@" ;;
  run) shift; run "$@" ;;
  report) report ;;
  all) shift; build; run "$@"; report ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
