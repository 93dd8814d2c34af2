#!/usr/bin/env bash
# A tried and unshipped variant of step 4 of scripts/train_real_cars.sh: the three-set run with the
# VAE kept at the paper's KL weight (5) after its 6,000 fine-tuning steps, and its UNet trained to
# 40,000, 80,000 and 120,000 steps; scored on the three val splits beside step 4's run. Run from the
# repository root after scripts/train_real_cars.sh (it needs $DATA/mixed3 and models/cc0).
set -euo pipefail
source scripts/recipe_env.sh  # env, DATA, RUNS, T, val_report, unet_stages

R="$RUNS/torcs_kl5"
python -m training.train_vae --config colour --data "$DATA/mixed3" --out "$R" $T \
  --set vae_train.iterations=6000 --set vae_train.init_from=models/cc0 \
  --set vae_train.colour_from=other_view --set vae_train.lr=0.0003 --set vae_train.warmup_steps=100
python -m training.encode_latents --out "$R" --data "$DATA/mixed3"
unet_stages torcs_kl5 mixed3 40000 80000 120000
