#!/usr/bin/env bash
# Benchmarks that print figures (none are asserted by tests). Builds first.
#   scripts/bench.sh            every benchmark this build has
#   scripts/bench.sh gemm       one of them (rollout: also the DeepSeek-V3-shaped model with
#                               speculative rollout)
#   scripts/bench.sh dist       data-parallel scaling: SFT and GRPO steps on 1 and 2 ranks
#                               (rlft launch, one thread per rank), with the all-reduce time
#   scripts/bench.sh lora       LoRA (rank 16, every trunk linear layer) against full fine-tuning
#                               at the real shapes, KL reference included: peak memory and s/step
#                               (about 6 minutes on 2 cores; not part of `all`)
# The GEMM benchmark also runs once on Debian's reference BLAS (forced through
# LD_LIBRARY_PATH), to show what the fast path is worth on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
rlft=${BUILD_DIR:-build}/rlft
which=${1:-all}
available=$("$rlft" bench --help | awk '/^Subcommands:/{f=1;next} f && NF {print $1}')

run_bench() {
  echo "== rlft bench $1"
  "$rlft" bench "$@"
}

for b in $available; do
  [[ "$which" != all && "$which" != "$b" ]] && continue
  [[ "$b" == allreduce ]] && continue  # needs ranks: below, with dist
  run_bench "$b"
  if [[ "$b" == gemm ]]; then
    ref=/usr/lib/x86_64-linux-gnu/blas
    if [[ -e "$ref/libblas.so.3" ]]; then
      echo "== rlft bench gemm on the reference BLAS ($ref), for comparison"
      LD_LIBRARY_PATH=$ref "$rlft" bench gemm --sizes 1024
    fi
  fi
  if [[ "$b" == rollout ]]; then
    # The DeepSeek-V3 shape at the same size (MLA, one MTP module), with speculative rollout.
    dir=$(mktemp -d)
    "$rlft" model init configs/model/bench-deepseek-v3.yaml -o "$dir/model" >/dev/null
    echo "== rlft bench rollout --model (configs/model/bench-deepseek-v3.yaml) --speculative 2"
    "$rlft" bench rollout --model "$dir/model" --continuous false --speculative 2
    rm -rf "$dir"
  fi
done

# Scaling: the same global batch on 1 and 2 ranks, one thread each.
if [[ "$which" == all || "$which" == dist ]]; then
  echo "== rlft launch --nproc 2 --threads-per-rank 1 -- bench allreduce"
  "$rlft" launch --nproc 2 --threads-per-rank 1 -- bench allreduce
  for trainer in "--sft" ""; do
    for n in 1 2; do
      echo "== rlft launch --nproc $n --threads-per-rank 1 -- bench train $trainer"
      "$rlft" launch --nproc "$n" --threads-per-rank 1 -- bench train $trainer
    done
  done
fi

# LoRA against full fine-tuning at real sizes, with a KL reference (a frozen copy for full
# fine-tuning, the adapters switched off for LoRA); a short step (2 prompts × 4 × 32 tokens):
# the memory is the weights' and the optimizer's.
if [[ "$which" == lora ]]; then
  for c in qwen3-0.6b deepseek-v3-1b; do
    echo "== rlft bench train --config configs/bench/$c.yaml --compare-lora 16"
    "$rlft" bench train --config "configs/bench/$c.yaml" --compare-lora 16 --set grpo.loss.kl_beta=0.04 \
      --set grpo.prompts_per_step=2 --set grpo.group_size=4 --set grpo.max_new_tokens=32 2>&1 | grep -v " INFO "
  done
fi
