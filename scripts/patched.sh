#!/usr/bin/env bash
# A `patched` candle: the crates.io sources of the pinned candle-core/candle-nn with every patch
# of patches/candle-<v>/ applied, and a copy of this workspace that uses them through
# [patch.crates-io] (path dependencies: offline, no git).
#
#   scripts/patched.sh setup                  # (re)create the patched sources and workspace copy
#   scripts/patched.sh build [--cuda] [--debug]  # build repro there; copies it to <dir>/bin
#   scripts/patched.sh check [--cuda]         # cargo check repro (and so candle-core/-nn) there
#   scripts/patched.sh test [--cuda [--no-run]]  # cargo test the patches' own tests in patched candle-core
#   scripts/patched.sh moe [--cuda [--no-run]] [TRAIN ARGS]  # moe-core: scatter-add's gradient check, parity, training
#   scripts/patched.sh verify                 # each patch alone on pristine sources: applies, tests pass (CPU)
#   scripts/patched.sh cargo ARGS...          # any cargo command in the workspace copy (CPU target dir)
#   scripts/patched.sh where                  # print the paths
#
# PATCHED_DIR (default target/patched) holds src/candle-{core,nn}-<v> and ws/. CPU builds use
# CARGO_TARGET_DIR (default target/), CUDA ones PATCHED_CUDA_TARGET_DIR (default target/cuda) so
# that the compiled candle-kernels (unpatched, a registry crate) is reused. `test` and `verify`
# build a candle-core copy as a package of its own, each in its own target dir under PATCHED_DIR
# (target-test, target-verify): two copies of one root package at different paths get the same
# artifact names and cargo would check the other copy's sources for freshness. A patch named
# candle-nn-*.patch applies to candle-nn, every other one to candle-core (paths relative to the
# crate root: `--- a/src/backprop.rs`), in the order of patches/candle-<v>/series.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${PATCHED_DIR:-$root/target/patched}
v=$(grep -m1 '^candle-core = ' "$root/Cargo.toml" | sed 's/.*"=\(.*\)"/\1/')
pdir=$root/patches/candle-$v
cpu_target=${CARGO_TARGET_DIR:-$root/target}
cuda_target=${PATCHED_CUDA_TARGET_DIR:-$root/target/cuda}
die() { echo "error: $*" >&2; exit 2; }

[ -f "$pdir/series" ] || die "no $pdir/series"
series=$(grep -v '^#' "$pdir/series" | grep -v '^ *$')

registry_src() {
  local d
  d=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$1-$v" 2>/dev/null | head -n 1)
  [ -n "$d" ] || die "$1 $v is not in the cargo registry cache (run: cargo fetch, in $root)"
  echo "$d"
}

# The new test files the patches add under tests/ (candle-core).
patch_tests() {
  for p in $series; do
    case $p in candle-nn-*) continue ;; esac
    sed -n 's|^+++ b/\(tests/[^ \t]*\.rs\)$|\1|p' "$pdir/$p"
  done
}

setup() {
  local stamp
  stamp=$( (echo "$v"; cat "$0" "$pdir/series"; for p in $series; do cat "$pdir/$p"; done
            (cd "$root" && git ls-files -z -- . ':!scripts' ':!reports' ':!patches' ':!matrix' ':!*.md' \
              | xargs -0 sha256sum) ) | sha256sum | cut -d' ' -f1)
  if [ -f "$work/.stamp" ] && [ "$(cat "$work/.stamp")" = "$stamp" ]; then
    echo "patched $v: up to date ($work)"; return
  fi
  rm -rf "$work/src" "$work/ws" "$work/.stamp"
  mkdir -p "$work/src" "$work/ws"
  for krate in candle-core candle-nn; do
    local dst=$work/src/$krate-$v
    cp -r "$(registry_src $krate)" "$dst"
    chmod -R u+w "$dst"
    for p in $series; do
      case $p in candle-nn-*) [ $krate = candle-nn ] || continue ;; *) [ $krate = candle-core ] || continue ;; esac
      (cd "$dst" && patch -p1 --fuzz=0 --forward --no-backup-if-mismatch -s < "$pdir/$p") \
        || die "$p does not apply to $krate $v"
      echo "applied $p to $krate"
    done
    # The copy is a root of its own (it lives under this workspace's directory), and the
    # crates.io manifest is normalized with autotests = false: register the patches' tests.
    # The checkout's lock replaces the crate's own, so that `test` builds the same dependency
    # versions as the workspace (and reuses its artifacts, candle-kernels included).
    printf '\n[workspace]\n' >> "$dst/Cargo.toml"
    cp "$root/Cargo.lock" "$dst/Cargo.lock"
    if [ $krate = candle-core ]; then
      for t in $(patch_tests); do
        grep -q "path = \"$t\"" "$dst/Cargo.toml" && continue
        printf '\n[[test]]\nname = "%s"\npath = "%s"\n' "$(basename "$t" .rs)" "$t" >> "$dst/Cargo.toml"
      done
    fi
  done
  # The workspace copy: tracked files only (like scripts/matrix.sh), plus the [patch] section.
  (cd "$root" && git ls-files -z | xargs -0 tar c) | tar x -C "$work/ws"
  cat >> "$work/ws/Cargo.toml" <<EOF

# Added by scripts/patched.sh: candle $v with patches/candle-$v/ applied.
[patch.crates-io]
candle-core = { path = "../src/candle-core-$v" }
candle-nn = { path = "../src/candle-nn-$v" }
EOF
  # The lock of the checkout; cargo rewrites the two candle entries to the path sources.
  local resolved
  resolved=$(cd "$work/ws" && cargo tree --offline -i candle-core --depth 0 | head -n 1)
  case $resolved in
    *"($work/src/candle-core-$v)"*) ;;
    *) die "the workspace copy does not use the patched candle-core: $resolved" ;;
  esac
  echo "$stamp" > "$work/.stamp"
  echo "patched $v: sources in $work/src, workspace in $work/ws"
}

build() {
  local features="" suffix="" tdir=$cpu_target profile=release pflag=--release
  while [ $# -gt 0 ]; do
    case $1 in
      --cuda) features="--features cuda"; suffix="-cuda"; tdir=$cuda_target; shift ;;
      --debug) profile=debug; pflag=""; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  setup
  (cd "$work/ws" && CARGO_TARGET_DIR=$tdir cargo build -q --offline $pflag -p repro --bin repro $features)
  mkdir -p "$work/bin"
  # The target dir is shared with the unpatched checkout: copy the binary out at once.
  cp "$tdir/$profile/repro" "$work/bin/repro$suffix"
  echo "built patched $v -> $work/bin/repro$suffix ($profile)"
  echo "note: $tdir/$profile/repro is now the patched build until the checkout's next cargo build"
}

check() {
  local features="" tdir=$cpu_target
  [ "${1:-}" = "--cuda" ] && { features="--features cuda"; tdir=$cuda_target; }
  setup
  (cd "$work/ws" && CARGO_TARGET_DIR=$tdir cargo check --offline --release -p repro $features)
  # The patches' tests too (their _gpu variants only compile with --cuda).
  local args=()
  for t in $(patch_tests); do args+=(--test "$(basename "$t" .rs)"); done
  (cd "$work/src/candle-core-$v" && CARGO_TARGET_DIR=$tdir cargo check --release $features "${args[@]}")
}

# With --no-run (after --cuda): build the test executables and print their paths, one a line,
# for a GPU machine without Rust (run each there with no arguments).
test_() {
  local features="" tdir=$work/target-test pflag="" norun=""
  [ "${1:-}" = "--cuda" ] && { features="--features cuda"; tdir=$cuda_target; pflag=--release; shift; }
  [ "${1:-}" = "--no-run" ] && norun=--no-run
  setup > /dev/null
  local args=()
  for t in $(patch_tests); do args+=(--test "$(basename "$t" .rs)"); done
  # Not --offline: candle-core's dev-dependencies (criterion) may need a download once.
  if [ -n "$norun" ]; then
    (cd "$work/src/candle-core-$v" && CARGO_TARGET_DIR=$tdir cargo test $pflag $features "${args[@]}" --no-run 2>&1) \
      | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | sed "s|^|$work/src/candle-core-$v/|; s|^$work/src/candle-core-$v//|/|"
    return
  fi
  (cd "$work/src/candle-core-$v" && CARGO_TARGET_DIR=$tdir cargo test $pflag $features "${args[@]}")
}

# Each patch alone on the pristine sources: it applies (--fuzz=0), its tests pass, and the same
# tests are run again with its src/ change reverted (a CPU failure there shows that the test
# catches the bug on the CPU; CUDA-only bugs pass on the CPU either way). CPU only.
verify() {
  local vdir=$work/verify/candle-core-$v summary="" failed=0 vtarget=$work/target-verify
  for p in $series; do
    case $p in candle-nn-*) continue ;; esac
    rm -rf "$vdir" && mkdir -p "$work/verify" && cp -r "$(registry_src candle-core)" "$vdir" && chmod -R u+w "$vdir"
    cp "$root/Cargo.lock" "$vdir/Cargo.lock"
    if ! (cd "$vdir" && patch -p1 --fuzz=0 -s < "$pdir/$p"); then
      summary+="$p: DOES NOT APPLY alone"$'\n'; failed=1; continue
    fi
    printf '\n[workspace]\n' >> "$vdir/Cargo.toml"
    local args=()
    for t in $(sed -n 's|^+++ b/\(tests/[^ \t]*\.rs\)$|\1|p' "$pdir/$p"); do
      printf '\n[[test]]\nname = "%s"\npath = "%s"\n' "$(basename "$t" .rs)" "$t" >> "$vdir/Cargo.toml"
      args+=(--test "$(basename "$t" .rs)")
    done
    local with without
    if (cd "$vdir" && CARGO_TARGET_DIR=$vtarget cargo test -q "${args[@]}" > "$work/verify/${p%.patch}.with.txt" 2>&1); then
      with=pass; else with=FAIL; failed=1; fi
    awk '/^diff --git /{keep = ($3 ~ /^a\/src\//)} keep' "$pdir/$p" | (cd "$vdir" && patch -R -p1 -s)
    if (cd "$vdir" && CARGO_TARGET_DIR=$vtarget cargo test -q "${args[@]}" > "$work/verify/${p%.patch}.without.txt" 2>&1); then
      without="pass (the bug is not on the CPU)"; else without="fail (the test catches the bug on the CPU)"; fi
    summary+="$p: tests ${args[*]}: with the patch $with, without its src/ change $without"$'\n'
  done
  rm -rf "$vdir"
  printf '%s' "$summary"
  return $failed
}

# moe-core on the patched build. Its tests pin scatter-add's backward as failing on 0.11.1
# (gradcheck, reference_parity: "fixed upstream? update the expectation"); here they are copied
# to *_patched.rs in the workspace copy with that expectation inverted (scatter-add must train
# and match), run, and a short scatter-add training run follows. The checkout's tests are not
# touched. Extra arguments go to the train example (default: --steps 30). --cuda: parity and
# training on the GPU (release build in the CUDA target dir).
moe() {
  setup
  local t=$work/ws/crates/moe-core/tests
  sed 's/^\( *\)if dispatch == Dispatch::ScatterAdd {/\1if false \&\& dispatch == Dispatch::ScatterAdd {/' \
    "$t/gradcheck.rs" > "$t/gradcheck_patched.rs"
  sed 's/Dispatch::ScatterAdd => Expect::BackwardFails("shape mismatch in scatter"),/Dispatch::ScatterAdd => Expect::Trains,/' \
    "$t/reference_parity.rs" > "$t/reference_parity_patched.rs"
  grep -q 'if false && dispatch == Dispatch::ScatterAdd' "$t/gradcheck_patched.rs" \
    || die "gradcheck.rs changed: its scatter-add expectation was not found"
  grep -q 'Dispatch::ScatterAdd => Expect::Trains,' "$t/reference_parity_patched.rs" \
    || die "reference_parity.rs changed: its scatter-add expectation was not found"
  cd "$work/ws"
  if [ "${1:-}" = "--cuda" ] && [ "${2:-}" = "--no-run" ]; then
    # The executables only, for a GPU machine without Rust: the two tests (run them there with
    # CANDLE_REPRO_DEVICE=cuda) and the train example.
    CARGO_TARGET_DIR=$cuda_target cargo test --offline --release --features cuda \
      -p moe-core --test gradcheck_patched --test reference_parity_patched --no-run 2>&1 \
      | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | sed "s|^\([^/]\)|$work/ws/\1|"
    CARGO_TARGET_DIR=$cuda_target cargo build -q --offline --release --features cuda -p moe-core --example train
    echo "$cuda_target/release/examples/train"
    return
  fi
  if [ "${1:-}" = "--cuda" ]; then
    shift
    # gradcheck runs on the CPU whatever the device; reference_parity on CANDLE_REPRO_DEVICE.
    CANDLE_REPRO_DEVICE=cuda CARGO_TARGET_DIR=$cuda_target cargo test --offline --release --features cuda \
      -p moe-core --test gradcheck_patched --test reference_parity_patched
    [ $# -gt 0 ] || set -- --steps 30
    CARGO_TARGET_DIR=$cuda_target cargo run --offline --release --features cuda -p moe-core --example train -- \
      --device cuda --dispatch scatter-add "$@"
    return
  fi
  CARGO_TARGET_DIR=$cpu_target cargo test --offline -p moe-core --test gradcheck_patched --test reference_parity_patched
  [ $# -gt 0 ] || set -- --steps 30
  CARGO_TARGET_DIR=$cpu_target cargo run --offline -p moe-core --example train -- --device cpu --dispatch scatter-add "$@"
}

where() {
  echo "patches:    $pdir ($(echo $series | wc -w) in series)"
  echo "sources:    $work/src/candle-core-$v $work/src/candle-nn-$v"
  echo "workspace:  $work/ws (cd there and use cargo as in the checkout, with --offline)"
  for b in repro repro-cuda; do [ -x "$work/bin/$b" ] && echo "binary:     $work/bin/$b"; done
  return 0
}

case "${1:-}" in
  setup) setup ;;
  build) shift; build "$@"; where ;;
  check) shift; check "$@" ;;
  test) shift; test_ "$@" ;;
  cargo) shift; setup >/dev/null; cd "$work/ws" && CARGO_TARGET_DIR=$cpu_target exec cargo "$@" ;;
  moe) shift; moe "$@" ;;
  verify) verify ;;
  where) where ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac
