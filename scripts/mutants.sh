#!/usr/bin/env bash
# Mutation check: plants, one at a time, the breakages that once passed every check (issue
# "Checks that can fail"), each in a scratch copy of HEAD, and runs the check that must catch it.
# A mutant is "caught" when that check fails. Exit 0 only when every mutant is caught.
#
#   scripts/mutants.sh            # all mutants (~10 min on 2 cores: each rebuilds one crate)
#   scripts/mutants.sh NAME…      # only these
#   scripts/mutants.sh --apply-only   # each mutant applies to HEAD (none void); no build, no
#                                     # check (seconds: CI runs it, so a pattern that the code
#                                     # moved away from fails at once instead of rotting)
#
# The scratch copy shares one target dir (target/mutants) so only the mutated crate rebuilds.
# Every extraction takes the current time as mtime (`tar -m`): restoring a file with its older
# commit time would leave cargo's build of the previous mutant in place.
set -uo pipefail
root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/mutants.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
git -C "$root" archive HEAD | tar -x -m -C "$scratch"
export CARGO_TARGET_DIR="$root/target/mutants" CARGO_TERM_COLOR=never
cd "$scratch" || exit 2

# replace FILE OLD NEW: a literal, single replacement; the mutant is void if OLD is absent.
replace() {
  python3 - "$@" <<'EOF'
import sys
path, old, new = sys.argv[1:4]
s = open(path).read()
if s.count(old) != 1:
    sys.exit(f"mutant does not apply: {old!r} found {s.count(old)} times in {path}")
open(path, "w").write(s.replace(old, new))
EOF
}

apply_only=
if [ "${1:-}" = --apply-only ]; then apply_only=1; shift; fi
caught=0 missed=0 void=0 applied=0
declare -A baseline=()
# mutant NAME DESCRIPTION APPLY CHECK: APPLY edits the scratch copy, CHECK must then fail. CHECK
# must pass on the unmutated copy first (once per distinct check), or a failure proves nothing.
mutant() {
  local name=$1 what=$2 apply=$3 check=$4
  if [ ${#only[@]} -gt 0 ] && ! printf '%s\n' "${only[@]}" | grep -qx "$name"; then return; fi
  git -C "$root" archive HEAD | tar -x -m -C "$scratch"
  if [ -n "$apply_only" ]; then
    if (eval "$apply") >/dev/null 2>"$scratch/.apply.err"; then
      applied=$((applied + 1))
    else
      echo "VOID    $name: $(cat "$scratch/.apply.err")"
      void=$((void + 1))
    fi
    return
  fi
  if [ -z "${baseline[$check]:-}" ]; then
    if (eval "$check") >"$scratch/.base.log" 2>&1; then
      baseline[$check]=ok
    else
      echo "BASELINE FAILS  \`$check\` fails without any mutant: fix HEAD first"
      tail -5 "$scratch/.base.log"
      exit 1
    fi
  fi
  if ! (eval "$apply") >/dev/null 2>"$scratch/.apply.err"; then
    echo "VOID    $name: $(cat "$scratch/.apply.err")"
    void=$((void + 1)); return
  fi
  if (eval "$check") >"$scratch/.check.log" 2>&1; then
    echo "MISSED  $name: $what — \`$check\` still passes"
    missed=$((missed + 1))
  else
    echo "caught  $name: $what — \`$check\` fails: $(grep -m1 -E 'not completed|error|FAILED|panicked|CHANGED|failed|mismatch|assert' "$scratch/.check.log" | cut -c1-160)"
    caught=$((caught + 1))
  fi
}
only=("$@")

mutant sweep-child-dies \
  "a sweep child for matmul panics before its first cell" \
  'replace repro/src/sweep/mod.rs "    let cells = plan(op, seed, random);" "    let cells = plan(op, seed, random);
    if op.name == \"matmul\" { panic!(\"mutant\") }"' \
  'cargo run -q -p repro -- sweep --device cpu --ops matmul,silu --report-dir "$scratch/r"'

mutant sweep-budget \
  "a sweep whose budget runs out before the ops finish (the default budget cut to 1 s)" \
  'replace repro/src/commands/sweep.rs "#[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    budget: u64," "#[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    budget: u64,"' \
  'cargo run -q -p repro -- sweep --device cpu --jobs 1 --report-dir "$scratch/r"'

mutant oracle-softmax-bf16 \
  "the oracle's softmax is 0.06 high on every bf16 element (rows no longer sum to 1)" \
  'replace crates/harness/src/oracle/sweep_ops.rs "        e.iter().map(|x| x / s).collect()
    });
    Ok(out(t.dtype, t.shape.clone(), values))" "        e.iter().map(|x| x / s).collect()
    });
    let values = if t.dtype == DType::BF16 { values.iter().map(|v| v + 0.06).collect() } else { values };
    Ok(out(t.dtype, t.shape.clone(), values))"' \
  'cargo run -q -p repro -- sweep --device cpu --ops softmax --report-dir "$scratch/r"'

mutant compare-infinity \
  "any finite value matches an expected infinity" \
  'replace crates/harness/src/compare.rs "let bad = abs.is_nan() || (w.is_infinite() && g != w) || abs > b;" "let bad = abs.is_nan() || abs > b;"' \
  'cargo test -q -p harness --lib compare'

mutant cpu-oracle-check \
  "the CPU's disagreement with the oracle goes unrecorded (the CPU suite sees only inconclusive)" \
  'replace crates/harness/src/variant.rs "reference_disagrees: !reference_checks.iter().all(Check::agrees)," "reference_disagrees: false,"' \
  'cargo run -q -p repro -- run --device cpu --report-dir "$scratch/r"'

mutant known-case-divergence-dropped \
  "a known CPU divergence of a case loses its expected-failure entry" \
  'python3 - <<EOF
p = "repro/src/cases/scatter_add_backward.rs"
s = open(p).read()
i = s.index("        KnownDivergence {\n            variant: \"scatter-overwrite\"")
j = s.index("        },\n", i) + len("        },\n")
open(p, "w").write(s[:i] + s[j:])
EOF' \
  'cargo test -q -p backend-tests --test cases'

mutant sweep-manifest-entry-dropped \
  "the sweep manifest forgets a divergence its snapshot still shows" \
  'python3 - <<EOF
p = "repro/sweep-known.toml"
s = open(p).read()
i = s.index("[gather-fwd-unimplemented-src-transposed]")
j = s.index("\n[", s.index("[gather-fwd-unimplemented-src-transposed.devices]")) + 1
open(p, "w").write(s[:i] + s[j:])
EOF' \
  'cargo test -q -p backend-tests --test sweep'

mutant auto-picks-slowest \
  "auto picks the slowest strategy" \
  'replace crates/moe-core/src/auto.rs ".min_by(|a, b| a.1.total_cmp(&b.1))" ".max_by(|a, b| a.1.total_cmp(&b.1))"' \
  'cargo test -q -p moe-core --test auto'

mutant snippet-wrong-column \
  "the narrowed-matmul snippet multiplies by another column than it claims" \
  'replace repro/snippets/src/bin/snippet_matmul_narrowed_operand.rs "let col = w.narrow(1, 2, 1)?;" "let col = w.narrow(1, 3, 1)?;"' \
  'cargo test -q -p snippets'

mutant case-variant-dropped \
  "a case variant disappears while its snapshot stays" \
  'replace repro/src/cases/matmul_narrowed_operand.rs "            \"lhs-narrowed\",
            \"columns" "            \"lhs-narrowed-renamed\",
            \"columns"' \
  'cargo test -q -p backend-tests --test cases'

mutant status-mark-wrong \
  "STATUS.md marks a divergence on a backend whose sweep report does not show it" \
  'python3 - <<EOF
p = "repro/sweep-known.toml"
s = open(p).read()
i = s.index("[rms-norm-fwd-unimplemented]")
j = s.index("backends = [\"cpu\"]", i)
open(p, "w").write(s[:j] + "backends = [\"cpu\", \"cuda\"]" + s[j + len("backends = [\"cpu\"]"):])
EOF' \
  'cargo test -q -p backend-tests --test sweep'

if [ -f "$root/crates/moe-core/tests/reference_parity.rs" ]; then
  mutant moe-no-residual \
    "MoeBlock::forward drops the residual x + y (shared by every strategy)" \
    'replace crates/moe-core/Cargo.toml "[features]" "[features]
default = [\"planted-bug-no-residual\"]"' \
    'cargo test -q -p moe-core --test reference_parity'
fi

if [ -n "$apply_only" ]; then
  echo "mutants: $applied apply, $void void (not built or checked: --apply-only)"
  [ "$void" = 0 ]
  exit
fi
echo "mutants: $caught caught, $missed missed, $void void"
[ "$missed" = 0 ] && [ "$void" = 0 ]
