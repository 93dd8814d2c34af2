#!/usr/bin/env bash
# A tried and unshipped variant of scripts/train_real_cars.sh: the torcs cars (Debian's torcs-data,
# fetched at render time) added as a third set. The VAE fine-tunes models/default's for 6,000 steps on
# the three-way mix, then a new UNet trains 40,000 steps; it is scored on the val splits of all three
# sets beside the run that made models/default ($RUNS/final). Run from the repository root after
# scripts/train_real_cars.sh (it needs $DATA/cars, $DATA/meshcars and $RUNS/final). The README's
# comparison was made when $RUNS/final stopped at 40,000 UNet steps (its val_* reports); the recipe now
# trains it on to 80,000 (val80k_*).
set -euo pipefail
source scripts/recipe_env.sh  # env, DATA, RUNS, T, val_report

python -m training.render --set torcs --out "$DATA/torcs" --train 2000 --val 50 --test 50 --views 50 \
  --test-views 251 --seed 0 --workers 2
python -m training.mix_sets --out "$DATA/mixed3" "$DATA/cars" "$DATA/meshcars" "$DATA/torcs"
python -m training.train_vae --config colour --data "$DATA/mixed3" --out "$RUNS/torcs_mix" $T \
  --set vae_train.iterations=6000 --set vae_train.init_from=models/default \
  --set vae_train.colour_from=other_view --set vae_train.lr=0.0003 --set vae_train.warmup_steps=100
python -m training.encode_latents --out "$RUNS/torcs_mix" --data "$DATA/mixed3"
python -m training.train_unet --config colour --data "$DATA/mixed3" --out "$RUNS/torcs_mix" $T \
  --set unet_train.iterations=40000
val_report torcs_mix val cars meshcars torcs
val_report final val80k torcs  # cars and meshcars: written by scripts/train_real_cars.sh
