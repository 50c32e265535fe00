# On the lent GPU machine, from the repo's root, with the pack folder carried:
#   bash experiments/device_cel_run.sh BUDGET_S [PACK_DIR [TRAIN OPTIONS]]   (see device_cel_run.py)
# The machine has torch but not this package: its import names are linked in a folder of
# their own. What comes back under $OUT: the student, its last checkpoint and the log.
set -u
budget=$1 pack=${2:-.gpu}; shift; shift || true
OUT=${OUT:-/tmp/device_out}
export PYTHONUNBUFFERED=1
rm -rf /tmp/site /tmp/data /tmp/run && mkdir -p /tmp/site/animeedge /tmp/data "$OUT"
cp -r animeedge/. /tmp/site/animeedge/
for p in generator compress runtimes calibration mobile_app; do ln -s "$PWD/$p" /tmp/site/animeedge/$p; done
export PYTHONPATH=/tmp/site:$PWD/$pack/py
tar xJf "$pack/pack.tar.xz" -C /tmp/data
init=() && [ -f "$pack/init.safetensors" ] && init=(--init "$pack/init.safetensors")
timeout $((budget + 240)) ${PY:-python3} experiments/device_cel_run.py train --budget "$budget" "${init[@]}" "$@" \
    2>&1 | tee "$OUT/train.log"
last=$(ls -d /tmp/run/student.work/step_* 2>/dev/null | tail -1)
if [ -n "$last" ]; then
    mkdir -p "$OUT/ckpt" && cp "$last"/{state.pt,rng.json,progress.json,student.safetensors} "$OUT/ckpt/"
fi
cp /tmp/run/student.safetensors /tmp/run/student.json "$OUT/" 2>/dev/null
ls -R "$OUT"
