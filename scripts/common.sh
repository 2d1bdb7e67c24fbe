# Sourced by train_*.sh: paths, preset and the launcher. Not meant to be run on its own.
#   DATA    dataset folder (default data/toy, the demo dataset, generated when missing)
#   PRESET  demo | paper (default: demo when $DATA holds the demo dataset's toy.json, else paper)
#   RUNS    output folder (default runs/demo, or runs/<dataset folder name> for the paper preset)
#   NGPU    processes per stage; >1 runs each training stage under mpirun -np $NGPU
#   MPIRUN  extra mpirun arguments (e.g. "--hostfile hosts" on a cluster)
#   SAM_CHECKPOINT, SAM_TYPE  the SAM weights and their type for PROPOSER=sam (default: ViT-B in weights/)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
DATA=${DATA:-data/toy}
if [ "$DATA" = data/toy ] && [ ! -f data/toy/toy.json ]; then
  "$PY" -m uss.data.toy --out data/toy
fi
if [ -z "${PRESET:-}" ]; then
  if [ -f "$DATA/toy.json" ]; then PRESET=demo; else PRESET=paper; fi
fi
case "$PRESET" in demo|paper) ;; *) echo "error: PRESET must be demo or paper, got '$PRESET'" >&2; exit 2 ;; esac
if [ -z "${RUNS:-}" ]; then
  if [ "$PRESET" = demo ]; then RUNS=runs/demo; else RUNS=runs/$(basename "$DATA"); fi
fi
NGPU=${NGPU:-1}
SAM_CHECKPOINT=${SAM_CHECKPOINT:-weights/sam_vit_b_01ec64.pth}
SAM_TYPE=${SAM_TYPE:-vit_b}
mkdir -p "$RUNS"

# launch SCRIPT ARGS...: plain python for NGPU=1, else mpirun -np NGPU (jittor shards batches,
# all-reduces gradients and synchronises BatchNorm across the ranks).
launch() {
  if [ "$NGPU" -gt 1 ]; then
    local flags=(-np "$NGPU")
    [ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
    # shellcheck disable=SC2086
    mpirun "${flags[@]}" ${MPIRUN:-} "$PY" "$@"
  else
    "$PY" "$@"
  fi
}

stage() { echo; echo "=== $* ($(date +%H:%M:%S))"; }

# region_options: sets REGIONS, the region-proposer arguments of sam_refine.py and test.py, for $PROPOSER (sam: the
# checkpoint $SAM_CHECKPOINT of type $SAM_TYPE; superpixel: the $PRESET settings). The settings are defined once, in
# src/uss/regions/defaults.py (python -m uss.regions sam | superpixel demo|paper prints them): SAM's generator as
# the challenge entry ran it; superpixels as this project's stand-in for SAM masks.
region_options() {
  if [ "$PROPOSER" = sam ]; then
    # shellcheck disable=SC2207
    REGIONS=(--proposer sam --sam-checkpoint "$SAM_CHECKPOINT" --sam-model-type "$SAM_TYPE" $("$PY" -m uss.regions sam))
  else
    # shellcheck disable=SC2207
    REGIONS=(--proposer superpixel $("$PY" -m uss.regions superpixel "$PRESET"))
  fi
}
