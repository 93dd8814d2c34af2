# Sourced by the training recipes (scripts/train_real_cars.sh, scripts/experiment_paper_kl_weight.sh):
# the project's environment, where data and runs go, and the val report every choice is made on.
# ROS 2's setup files read unset variables: not under the recipes' `set -u`.
case $- in
  *u*) set +u; source scripts/env.sh; set -u ;;
  *) source scripts/env.sh ;;
esac
DATA=${DATA:-data}
RUNS=${RUNS:-runs}
T="--threads 1"

# val_report RUN NAME SET...: DDIM-4 from temperature 0 on each set's val split (never the real SRN
# cars), written to $RUNS/RUN/NAME_SET.
val_report() {
  local run=$1 name=$2 set
  shift 2
  for set in "$@"; do
    python -m training.evaluate --run "$RUNS/$run" --data "$DATA/$set" --split val --samplers ddim-4 \
      --temperature 0 --guidance 1.0 --out "$RUNS/$run/${name}_$set"
  done
}

# unet_stages RUN MIX STEPS...: a new UNet on RUN's latents trained to the first step count, then
# resumed to each next one (the cosine schedule restarts for the new length); after each stage the
# val report of all three sets, named val for the first stage and val<N>k for the later ones.
unet_stages() {
  local run=$1 mix=$2 steps resume=""
  shift 2
  for steps in "$@"; do
    python -m training.train_unet --config colour --data "$DATA/$mix" --out "$RUNS/$run" $resume $T \
      --set unet_train.iterations="$steps"
    if [ -z "$resume" ]; then
      val_report "$run" val cars meshcars torcs
    else
      val_report "$run" "val$((steps / 1000))k" cars meshcars torcs
    fi
    resume=--resume
  done
}
