#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to rlft's default job: install what is missing,
# build in Release, then run the default pipeline (configs/default/): SFT warm start of a
# small DeepSeek-V3-style MoE on noisy arithmetic demonstrations, then GRPO with a verifiable
# reward. It prints the held-out accuracy before and after GRPO, and how to look at the runs.
# Extra arguments go to both runs (e.g. --set run.threads=2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
rlft="${BUILD_DIR:-build}/rlft"
"$rlft" doctor
stamp=$(date +%Y%m%d-%H%M%S)
sft="default-sft-$stamp"
grpo="default-grpo-$stamp"
start=$(date +%s)
"$rlft" sft configs/default/sft.yaml --set run.name="$sft" "$@"
"$rlft" train configs/default/grpo.yaml --set run.name="$grpo" --set policy.path="runs/$sft/final" "$@"
end=$(date +%s)
echo
echo "default pipeline: $((end - start)) s (SFT + GRPO)"
echo "held-out accuracy (step 0 = the SFT model, before GRPO):"
"$rlft" runs show "$grpo" --series eval/accuracy
echo "look at the runs: $rlft runs show $grpo    (or: $rlft serve, then http://127.0.0.1:8080)"
