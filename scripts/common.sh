# Sourced by train_*.sh: paths, preset and the launcher. Not meant to be run on its own.
#   DATA    dataset folder (default data/toy, the demo dataset, generated when missing)
#   PRESET  demo | small | paper (default: demo when $DATA holds the demo dataset's toy.json, else paper); small is
#           for a few hundred images of your own on a CPU: the demo's network on a scaled-down copy of them
#   CLASSES number of classes to find (needed for a plain image folder; overrides the dataset's own count)
#   RUNS    output folder (default runs/demo, or runs/<dataset folder name> for the paper preset)
#   NGPU    processes per stage; >1 runs each training stage under mpirun -np $NGPU
#   MPIRUN  extra mpirun arguments (e.g. "--hostfile hosts" on a cluster)
#   SAM_CHECKPOINT, SAM_TYPE  the SAM weights and their type for PROPOSER=sam (default: ViT-B in weights/)
#   THRESHOLD  sweep | label-free: how train_2.sh and train_3.sh choose the background thresholds (default: sweep on
#           the validation ground truth when $DATA has it, else label-free, from the data alone)
#   CRF     pseudo | predictions | both: dense-CRF refinement (src/uss/crf.py) of the training labels that the
#           fine-tuning rows learn from (per-pixel labels of linear_head_row.sh, mask labels of train_3.sh), of
#           test.py's predictions (train_4.sh), or both; off by default (docs/pipeline.md measures it)
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
case "$PRESET" in demo|small|paper) ;;
  *) echo "error: PRESET must be demo, small or paper, got '$PRESET'" >&2; exit 2 ;; esac
if [ -z "${RUNS:-}" ]; then
  if [ "$PRESET" = demo ]; then RUNS=runs/demo; else RUNS=runs/$(basename "$DATA"); fi
fi
NGPU=${NGPU:-1}
# A plain image folder (images at any depth, no ImageNet-S layout, no labels; src/uss/data/layout.py): every stage
# reports unreadable files by name and skips them, the class count comes from CLASSES, and PRESET=small trains on a
# copy scaled to short side 96 ($RUNS/images_small; test.py still predicts the originals).
CLASS_ARGS=()
if [ -n "${CLASSES:-}" ]; then CLASS_ARGS=(--num-classes "$CLASSES"); fi
SKIP_BAD=()
ALLOW_FAILURES=()
TRAIN_DATA=$DATA
PLAIN=0
if "$PY" -c "import sys; from uss.data.layout import is_plain_folder as p; sys.exit(0 if p(sys.argv[1]) else 1)" "$DATA"
then
  PLAIN=1
  if [ -z "${CLASSES:-}" ]; then
    echo "error: $DATA is a plain image folder (no ImageNet-S layout): set CLASSES=N, the number of classes" >&2
    exit 2
  fi
  SKIP_BAD=(--skip-bad-files)
  ALLOW_FAILURES=(--allow-failures)
  if [ "$PRESET" = small ]; then
    TRAIN_DATA=$RUNS/images_small
    "$PY" -m uss.data.resized_copy --data "$DATA" --out "$TRAIN_DATA" --short-side 96
  fi
fi
if [ -z "${THRESHOLD:-}" ]; then
  if [ -d "$DATA/validation-segmentation" ]; then THRESHOLD=sweep; else THRESHOLD=label-free; fi
fi
case "$THRESHOLD" in sweep|label-free) ;;
  *) echo "error: THRESHOLD must be sweep or label-free, got '$THRESHOLD'" >&2; exit 2 ;; esac
CRF_LABELS=()
CRF_PREDICTIONS=()
case "${CRF:-}" in
  "") ;; pseudo) CRF_LABELS=(--crf) ;; predictions) CRF_PREDICTIONS=(--crf) ;;
  both) CRF_LABELS=(--crf); CRF_PREDICTIONS=(--crf) ;;
  *) echo "error: CRF must be pseudo, predictions or both, got '$CRF'" >&2; exit 2 ;; esac
SAM_CHECKPOINT=${SAM_CHECKPOINT:-weights/sam_vit_b_01ec64.pth}
SAM_TYPE=${SAM_TYPE:-vit_b}
mkdir -p "$RUNS"

# run_python SCRIPT ARGS...: "$PY" SCRIPT ARGS in this process, started once more, with a warning, when it dies of a
# native crash (SIGABRT, SIGBUS, SIGSEGV: exit status 134, 135, 139): every stage resumes where it stopped. Seen
# rarely, in the first step after jittor compiled that step's kernels (once in the UPerNet's first step of a demo
# run; once in the mask labels' first test image); the rerun passed; the cause is not traced (docs/pipeline.md,
# Jittor notes).
run_python() {
  local status=0 name=$1
  [ "$1" = -m ] && name=$2
  "$PY" "$@" || status=$?
  case $status in
    134|135|139)
      echo "warning: $name died of a native crash (exit status $status); running it once more (it resumes)" >&2
      "$PY" "$@" ;;
    *) return $status ;;
  esac
}

# launch SCRIPT ARGS...: run_python for NGPU=1, else mpirun -np NGPU (jittor shards batches, all-reduces gradients
# and synchronises BatchNorm across the ranks).
launch() {
  if [ "$NGPU" -gt 1 ]; then
    local flags=(-np "$NGPU")
    [ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
    # shellcheck disable=SC2086
    mpirun "${flags[@]}" ${MPIRUN:-} "$PY" "$@"
    return
  fi
  run_python "$@"
}

stage() { echo; echo "=== $* ($(date +%H:%M:%S))"; }

# region_options: sets REGIONS, the region-proposer arguments of sam_refine.py and test.py, for $PROPOSER (sam: the
# checkpoint $SAM_CHECKPOINT of type $SAM_TYPE; superpixel: the $PRESET settings). The settings are defined once, in
# src/uss/regions/settings.py (python -m uss.regions sam | superpixel demo|paper prints them): SAM's generator as
# the challenge entry ran it; superpixels as this project's stand-in for SAM masks.
region_options() {  # region_options [PRESET]: another preset's superpixel settings (small: the demo's, for 96-px copies)
  local preset=${1:-$PRESET}
  if [ "$preset" = small ]; then preset=demo; fi
  if [ "$PROPOSER" = sam ]; then
    # shellcheck disable=SC2207
    REGIONS=(--proposer sam --sam-checkpoint "$SAM_CHECKPOINT" --sam-model-type "$SAM_TYPE" $("$PY" -m uss.regions sam))
  else
    # shellcheck disable=SC2207
    REGIONS=(--proposer superpixel $("$PY" -m uss.regions superpixel "$preset"))
  fi
}
