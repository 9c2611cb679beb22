#!/usr/bin/env bash
# Issue 39's pilot runs, as docs/lab/PROTOCOL.md ("Beyond the study's recipe: the pilot runs") fixes them.
#   bash scripts/recipe_pilots.sh train   # both pilots side by side, one thread each; resumes from runs/pilot-*/checkpoints
#   bash scripts/recipe_pilots.sh eval    # the protocol's FIDs of every snapshot that has none yet
# Snapshots of the EMA pipeline at epochs 1, 2, 3 land in runs/pilot-<name>/snapshots/epoch_<k>/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
declare -A RECIPE=(
  [eps]="--prediction_type epsilon --snr_gamma 5"
  [v]="--prediction_type v_prediction --rescale_betas_zero_snr --snr_gamma 5"
)

train_one() {  # name: trains (or resumes) one pilot and snapshots its pipeline at the end of epochs 1, 2 and 3
  local name=$1 out=runs/pilot-$1 resume=()
  [ -d "$out/checkpoints" ] && resume=(--resume_from_checkpoint latest)
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 19 $PY training/train_ddpm.py --mixed_precision no \
    --output_dir "$out" --learning_rate 2e-4 --lr_scheduler constant_with_warmup --lr_warmup_steps 200 \
    --max_train_steps 1125 --num_epochs 3 --checkpointing_steps 75 --checkpoints_total_limit 2 --log_every 25 \
    --report_to none ${RECIPE[$name]} "${resume[@]}" >> "runs/pilot-$name.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do snapshot "$out"; sleep 30; done
  wait "$pid"
  snapshot "$out"
}

snapshot() {  # the pipeline folder as it stood when an epoch's sample grid appeared (written after the weights)
  local out=$1 e
  for e in 1 2 3; do
    if [ -f "$(printf '%s/figures/samples_epoch_%03d.png' "$out" "$e")" ] && [ ! -d "$out/snapshots/epoch_$e" ]; then
      sleep 20
      mkdir -p "$out/snapshots/epoch_$e"
      cp -r "$out"/{model_index.json,unet,scheduler,metrics.json,training_config.json} "$out/snapshots/epoch_$e/"
    fi
  done
}

evaluate() {  # folder, sampler, steps: one protocol point (N = 2,000, seed 0, study-test, fp32: this CPU has no native bf16), cached per folder
  $PY scripts/evaluate_ddpm.py --run_dir "$1" --sweep --sweep_only --sweep_samplers "$2" --sweep_steps "$3" \
    --sweep_samples 2000 --sweep_seed 0 --sweep_reference study-test --precision fp32 --batch_size 250
}

case "${1:-}" in
  train) mkdir -p runs; for name in "${!RECIPE[@]}"; do train_one "$name" & done; wait ;;
  eval)
    for e in 2 1 3; do  # the selecting snapshot (update 750) of both pilots first, ancestral-50 before the 10-step points
      for name in "${!RECIPE[@]}"; do
        dir=runs/pilot-$name/snapshots/epoch_$e
        [ -d "$dir" ] && evaluate "$dir" ddpm 50
      done
      [ "$e" = 2 ] || continue
      for name in "${!RECIPE[@]}"; do
        dir=runs/pilot-$name/snapshots/epoch_$e
        [ -d "$dir" ] || continue
        evaluate "$dir" sde-dpmsolver++ 10
        evaluate "$dir" dpmsolver++ 10
      done
    done ;;
  *) echo "usage: $0 train|eval" >&2; exit 2 ;;
esac
