#!/usr/bin/env bash
# Runs every upstream repro program on a GPU machine, each in its own process (a device-side
# assert poisons the process's CUDA context), and writes what each printed, with the machine,
# to OUT/upstream-outputs.txt; commit it as reports/upstream/outputs/cuda.txt, then run
# `cargo run -p repro -- upstream`: each text shows the output of exactly its program (matched
# by the hash of its source).
#
# Build (here, with the CUDA toolkit):
#   CARGO_TARGET_DIR=target/cuda cargo build --release --features cuda -p upstream-repros --bin all-upstream-repros
# then copy target/cuda/release/all-upstream-repros (stripped, xz-compressed is fine) beside this
# script on the GPU machine and run it there.
set -u
cd "$(dirname "$0")"
if [ -f all-upstream-repros.xz ]; then xz -d -f all-upstream-repros.xz; fi
chmod +x all-upstream-repros
out=${OUT:-.}/upstream-outputs.txt
{
  echo "# gpu: $(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader)"
  echo "# cuda (driver): $(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)"
  echo "# os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  ./all-upstream-repros | while read -r p hash; do
    echo "=== $p $hash"
    RUST_BACKTRACE=0 timeout 120 ./all-upstream-repros "$p" 2>&1
    echo "=== exit $?"
  done
} > "$out"
