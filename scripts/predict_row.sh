#!/usr/bin/env bash
# predict_row.sh CHECKPOINT ROW_DIR [inference args...]: predictions of a fine-tuned checkpoint on validation
# (Hungarian match -> ROW_DIR/validation/match.json) and test (that match), evaluated into ROW_DIR/{validation,test}.json.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [ $# -lt 2 ]; then echo "usage: bash scripts/predict_row.sh CHECKPOINT ROW_DIR [inference args...]" >&2; exit 2; fi
ckpt=$1 out=$2
shift 2
stage "predict + evaluate $ckpt -> $out"
run_python -m uss.stages.inference --checkpoint "$ckpt" --data "$DATA" --split validation --out "$out/validation" \
    --match auto --result "$out/validation.json" --quiet "$@"
if [ -d "$DATA/test-segmentation" ]; then
  run_python -m uss.stages.inference --checkpoint "$ckpt" --data "$DATA" --split test --out "$out/test" \
      --match "$out/validation/match.json" --result "$out/test.json" --quiet "$@"
else
  run_python -m uss.stages.inference --checkpoint "$ckpt" --data "$DATA" --split test --out "$out/test" --quiet "$@"
fi
