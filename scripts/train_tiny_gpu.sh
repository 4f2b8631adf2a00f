#!/bin/bash
# One GPU training run of the shipped tiny model: benchmark 40 steps, then size the run to ~TRAIN_S seconds.
set -u
PY=$(command -v python || command -v python3)
TRAIN_S=${TRAIN_S:-380}
$PY -c "import torch,sys;print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"
$PY -c "import safetensors, einops, tqdm, numpy, PIL; print('deps ok')" || exit 3
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
CFG=configs/tiny_pixel_realsr_x4.toml
T0=$(date +%s)
$PY -m resshift_core.train $CFG --set train.steps=40 --set optim.warmup_steps=10 --set log.log_every=20 \
  --set log.save_every=0 --set log.sample_every=0 --set log.progress=false --set log.out_dir='"/tmp/bench"' \
  --set log.export_name='"bench.safetensors"' --resume none 2>&1 | grep -v Warning | tail -5 || exit 4
RATE=$($PY -c "import json;r=[json.loads(l) for l in open('/tmp/bench/log.jsonl') if 'steps_per_s' in l];print(r[-1]['steps_per_s'])")
STEPS=$($PY -c "print(int(float('$RATE')*$TRAIN_S/100)*100)")
echo "bench: $RATE steps/s (after warm-up) -> steps=$STEPS; bench took $(( $(date +%s)-T0 )) s"
mkdir -p $OUT
T1=$(date +%s)
$PY -m resshift_core.train $CFG --set train.steps=$STEPS --set train.time_limit_s=$((TRAIN_S+40)) \
  --set log.progress=false --set log.out_dir='"/tmp/run"' --resume none > $OUT/train_stdout.txt 2>&1
echo "train rc=$? took $(( $(date +%s)-T1 )) s"
tail -5 $OUT/train_stdout.txt
cp /tmp/run/log.jsonl /tmp/run/config.toml /tmp/run/*.safetensors $OUT/ ; cp -r /tmp/run/samples $OUT/ 2>/dev/null
ls -la $OUT
