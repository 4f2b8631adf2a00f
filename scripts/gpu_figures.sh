#!/usr/bin/env bash
# Issue 14's GPU figures in one run, for a short lease on a GPU machine:
#
#   bash scripts/gpu_figures.sh OUT_DIR PUBLISHED_CHECKOUT
#
# 1. the published code against ours, same process, same random v3 + f4 weights and noise
#    (scripts/bench_published.py): 64->256, 256->1024, 512->2048; ours in fp32, bf16 and fp16;
# 2. ours alone (`bench`): the same sizes and dtypes, eager, with automatic tiling;
# 3. ours compiled (`bench --compile`): bf16, 64->256 and 512->2048.
# Each step has its own time limit (seconds: PUBLISHED_S, EAGER_S, COMPILE_S), so one slow step
# cannot eat the others' time (at most 3 x 90 + 150 + 150 = 570 s with the defaults, under a 600 s
# call); each writes JSON lines into OUT_DIR and its log beside them.
# DEVICE, SIZES and REPEAT override the defaults (DEVICE=cpu SIZES=64 REPEAT=1 COMPILE_S=30
# runs the same steps on a CPU, to check the script itself; the published code needs sizes of 64
# and more). The published code prints two lines of its own into the published_*.jsonl files.
#
# On a lent GPU machine (the device tool): the published checkout travels as an ignored folder,
#   echo /.published/ >> .git/info/exclude
#   rsync -a --exclude .git --exclude assets --exclude testdata /path/to/ResShift .published/
# (about 5 MB), then one call: command "bash scripts/gpu_figures.sh $OUT .published/ResShift",
# carry [".published"], timeout_s 600.
set -u
out=${1:?usage: gpu_figures.sh OUT_DIR PUBLISHED_CHECKOUT}
published=${2:?usage: gpu_figures.sh OUT_DIR PUBLISHED_CHECKOUT}
device=${DEVICE:-cuda}
sizes=${SIZES:-64 256 512}
repeat=${REPEAT:-5}
python=${PYTHON:-python3}
cd "$(dirname "$0")/.." || exit 2
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

status=0
step() {  # step NAME SECONDS COMMAND...: run with a limit, JSON to NAME.jsonl, stderr to NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    timeout "$limit" "$@" >"$out/$name.jsonl" 2>"$out/$name.log"
    local rc=$?
    cat "$out/$name.jsonl"
    [ "$rc" -eq 0 ] || { echo "$name: exit $rc (124: over its limit); see $name.log"; tail -3 "$out/$name.log"; status=1; }
}

"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$out/machine.txt"

for size in $sizes; do
    step "published_$size" "${PUBLISHED_S:-90}" "$python" scripts/bench_published.py --published "$published" \
        --device "$device" --size "$size" --dtype fp32 --dtype bf16 --dtype fp16 --repeat "$repeat" --json
done

size_args=()
for size in $sizes; do size_args+=(--size "$size"); done
step eager "${EAGER_S:-150}" "$python" -m resshift_core bench --json --device "$device" "${size_args[@]}" \
    --dtype fp32 --dtype bf16 --dtype fp16 --repeat "$repeat"

first=${sizes%% *}
last=${sizes##* }
compile_sizes=(--size "$first")
[ "$last" = "$first" ] || compile_sizes+=(--size "$last")
step compiled "${COMPILE_S:-150}" "$python" -m resshift_core bench --json --device "$device" "${compile_sizes[@]}" \
    --dtype bf16 --compile --repeat "$repeat"
exit $status
