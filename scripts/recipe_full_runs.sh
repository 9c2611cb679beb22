#!/usr/bin/env bash
# Issue 39's full runs, as docs/lab/PROTOCOL.md ("the full runs and time to quality", and its amendments) fixes them.
#   bash scripts/recipe_full_runs.sh train new study   # these side by side, one thread each; each resumes its checkpoints
#   bash scripts/recipe_full_runs.sh train diffusers   # the third, after
#   bash scripts/recipe_full_runs.sh eval              # the protocol's FID of every CPU-hour snapshot that has none yet
#   python scripts/time_to_quality.py                  # then the table and plot of FID against CPU-hours
# Each run stops at 12 training CPU-hours and writes its EMA pipeline at each whole CPU-hour to
# runs/full-<name>/snapshots/cpu_hours_<k>/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
declare -A RECIPE=(
  [new]="--prediction_type v_prediction --rescale_betas_zero_snr --snr_gamma 5 --learning_rate 2e-4
         --lr_scheduler constant_with_warmup --lr_warmup_steps 200 --num_epochs 60"
  [study]="--num_epochs 60"
  [diffusers]="--num_train_timesteps 1000 --beta_schedule linear --optimizer adamw --adam_beta1 0.95 --adam_beta2 0.999
               --adam_weight_decay 1e-6 --adam_epsilon 1e-8 --learning_rate 1e-4 --lr_scheduler cosine
               --lr_warmup_steps 500 --train_batch_size 16 --num_epochs 100 --checkpointing_steps 500"
)
PILOT_START=runs/pilot-v/checkpoints/checkpoint-750  # the New run's first 750 updates (first amendment)

train_one() {
  local name=$1 out=runs/full-$1
  if [ "$name" = new ] && [ ! -d "$out/checkpoints" ]; then
    if [ -d "$PILOT_START" ]; then
      mkdir -p "$out/checkpoints" && cp -r "$PILOT_START" "$out/checkpoints/"
    else
      echo "no $PILOT_START: the New run starts from scratch (say so in the results)" >&2
    fi
  fi
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 19 $PY training/train_ddpm.py --mixed_precision no --output_dir "$out" \
    --max_train_cpu_hours 12 --snapshot_every_cpu_hours 1 --checkpointing_steps 60 --checkpoints_total_limit 2 \
    --max_eval_samples 1000 --log_every 25 --report_to none --resume_from_checkpoint latest ${RECIPE[$name]} \
    >> "runs/full-$name.log" 2>&1
}

evaluate() {  # one protocol point: N = 2,000, seed 0, study-test, fp32, ancestral 50 steps; cached per folder
  $PY scripts/evaluate_ddpm.py --run_dir "$1" --sweep --sweep_only --sweep_samplers ddpm --sweep_steps 50 \
    --sweep_samples 2000 --sweep_seed 0 --sweep_reference study-test --precision fp32 --batch_size 250
}

case "${1:-}" in
  train)
    shift; mkdir -p runs
    for name in "$@"; do
      [ -n "${RECIPE[$name]:-}" ] || { echo "unknown run: $name (new, study, diffusers)" >&2; exit 2; }
    done
    for name in "$@"; do train_one "$name" & done; wait ;;
  eval)
    for dir in runs/full-*/snapshots/cpu_hours_*; do [ -d "$dir" ] && evaluate "$dir"; done ;;
  *) echo "usage: $0 train new|study|diffusers ... | eval" >&2; exit 2 ;;
esac
