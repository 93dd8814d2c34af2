#!/usr/bin/env bash
# How models/default was made: procedural cars + cars rendered from the real car models in
# assets/meshes/. Run from the repository root after `make setup`. Every training step resumes with
# --resume after an interruption. One torch thread per job: on a loaded 2-core machine two threads
# were far slower. The model card (models/default/README.md) gives the times measured for each stage.
set -euo pipefail
source scripts/recipe_env.sh  # env, DATA, RUNS, T, val_report

# 1. The two rendered sets and their mix (a tree of links to both).
python -m training.render --set cars --out "$DATA/cars" --train 2000 --val 50 --test 50 --views 50 \
  --test-views 251 --seed 0 --workers 2
python -m training.render --set meshcars --out "$DATA/meshcars" --train 2000 --val 50 --test 50 --views 50 \
  --test-views 251 --seed 0 --workers 2 --preview
python -m training.mix_sets --out "$DATA/mixed" "$DATA/cars" "$DATA/meshcars"

# 2. The data-mix ablation, one budget for every mix: the previous default's VAE (models/procedural;
#    init_from recovers its weights from the ONNX export) fine-tuned 3k steps on the mix, a new UNet 10k.
#    Selection data: our own val splits of both sets, never the real SRN cars.
for MIX in mixed meshcars cars; do
  python -m training.train_vae --config colour --data "$DATA/$MIX" --out "$RUNS/$MIX" $T \
    --set vae_train.iterations=3000 --set vae_train.init_from=models/procedural \
    --set vae_train.colour_from=other_view --set vae_train.lr=0.0003 --set vae_train.warmup_steps=100
  python -m training.encode_latents --out "$RUNS/$MIX" --data "$DATA/$MIX"
  python -m training.train_unet --config colour --data "$DATA/$MIX" --out "$RUNS/$MIX" $T \
    --set unet_train.iterations=10000
  val_report "$MIX" val cars meshcars
done

# 3. The chosen mix trained on: its VAE resumed to 8k steps, then a new UNet for 40k steps, then that
#    UNet on to 80k (it won on both val splits against its 40k self: see the model card).
mkdir -p "$RUNS/final" && cp -r "$RUNS/mixed/vae" "$RUNS/final/vae"
python -m training.train_vae --config colour --data "$DATA/mixed" --out "$RUNS/final" --resume $T \
  --set vae_train.iterations=8000
python -m training.encode_latents --out "$RUNS/final" --data "$DATA/mixed"
python -m training.train_unet --config colour --data "$DATA/mixed" --out "$RUNS/final" $T \
  --set unet_train.iterations=40000
val_report final val cars meshcars
python -m training.train_unet --config colour --data "$DATA/mixed" --out "$RUNS/final" --resume $T \
  --set unet_train.iterations=80000
val_report final val80k cars meshcars

# 4. Held-out test sets, export (the card carries models/default's notes), and the real cars.
python -m training.evaluate --run "$RUNS/final" --data "$DATA/cars" --samplers ddim-4 --sweep-sampler ddim-4 \
  --guidance 1.0 --temperature 0 --out "$RUNS/final/eval"
python -m training.export --vae "$RUNS/final/vae/checkpoint.safetensors" \
  --unet "$RUNS/final/unet/checkpoint.safetensors" --out models/default --name default \
  --data "$DATA/cars/test" --eval "$RUNS/final/eval" --guidance 1 --temperature 0 --steps 4 \
  --notes docs/default_model_notes.md
python -m training.evaluate_real --model models/default --data "$DATA/meshcars" --split test --max-targets 8 \
  --out "$RUNS/final/meshcars_test"
if [ -d ../shared/real_srn ]; then  # the real SRN cars: reported, never selected on
  python -m training.evaluate_real --model models/default --data ../shared/real_srn --split val \
    --out "$RUNS/final/real_srn"
fi

# 5. The one-step student, distilled from the exported teacher (DDIM-4) on the same data, added to the
#    folder; evaluate_real without --sampler then measures the student, with --sampler ddim the teacher.
python -m training.distill --teacher models/default --data "$DATA/mixed" --out "$RUNS/one_step" \
  --method regression $T
python -m training.export_student --student "$RUNS/one_step/checkpoint.safetensors" --model models/default
