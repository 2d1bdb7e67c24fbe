#!/usr/bin/env bash
# One command for a fresh GPU machine: set up (scripts/bootstrap.sh, plus faiss-gpu-cu12 in place of faiss-cpu,
# plus Open MPI when there are two GPUs), make a small 224-px demo-like dataset, and run every stage for a few
# iterations: PASS pretraining (ResNet-18 and ResNet-50, paper crops), pixel attention, k-means on the GPU, pseudo
# labels, 1x1 and UPerNet fine-tuning, test.py with SAM ViT-B (random weights, 1024-px input, 64 points per side,
# one out-of-memory error forced), and mpirun -np 2 pretraining when two GPUs exist. Prints images/s and peak GPU
# memory per stage and ends with one line per stage (ok or the error). Fits 10 minutes on one H100, set-up included.
#   bash benchmarks/gpu_check.sh                              on a machine with an NVIDIA GPU
#   GPU_CHECK_ALLOW_CPU=1 bash benchmarks/gpu_check.sh        CPU rehearsal of the same commands at tiny sizes
# Environment:
#   GPU_CHECK_OUT      output folder: logs/<stage>.log, summary.md, summary.json (default runs/gpu_check)
#   GPU_CHECK_BUDGET   seconds for everything, set-up included (default 570 on a GPU, 3600 for the rehearsal);
#                      stages that would start after it are reported as skipped
#   GPU_CHECK_TINY     1 = the rehearsal's tiny sizes (default: 1 on the CPU, 0 on a GPU)
#   GPU_CHECK_STAGES   comma list of stages to run (default all; see the summary for their names)
#   GPU_CHECK_WHEELS   folder of wheels for a machine without a package index (pip --no-index --find-links)
#   GPU_CHECK_PYTHON   an interpreter that already has the pinned packages: used as it is, bootstrap.sh skipped
# The stages themselves are benchmarks/gpu_check.py's; this script only checks the GPU and sets up.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$(date +%s)
log() { echo "[gpu_check] $*"; }

# uss._environment.gpu_usable (nvidia-smi -L answers with a GPU) decides, as it does for every stage.
has_gpu() { python3 -c 'import sys; sys.path.insert(0, "src"); from uss._environment import gpu_usable; sys.exit(0 if gpu_usable() else 1)'; }
if has_gpu; then
  gpus=$(nvidia-smi -L | grep -c '^GPU')
  tiny=${GPU_CHECK_TINY:-0}
  budget=${GPU_CHECK_BUDGET:-570}
elif [ "${GPU_CHECK_ALLOW_CPU:-0}" = 1 ]; then
  gpus=0
  tiny=${GPU_CHECK_TINY:-1}
  budget=${GPU_CHECK_BUDGET:-3600}
else
  echo "gpu_check: no usable NVIDIA GPU (nvidia-smi -L lists none); nothing was run. For a CPU rehearsal of the same commands: GPU_CHECK_ALLOW_CPU=1 bash benchmarks/gpu_check.sh" >&2
  exit 2
fi
out=${GPU_CHECK_OUT:-runs/gpu_check}
mkdir -p "$out/logs"
setup_log=$out/logs/setup.log
rows=$out/setup.tsv
: > "$setup_log"
: > "$rows"
# row NAME STATUS SECONDS [DETAIL]: one set-up line of the summary.
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >> "$rows"; }
last_line() { grep -v '^\s*$' "$setup_log" | tail -1 | cut -c1-200; }

if [ -n "${GPU_CHECK_WHEELS:-}" ]; then
  export PIP_NO_INDEX=1 PIP_FIND_LINKS
  PIP_FIND_LINKS=$(cd "$GPU_CHECK_WHEELS" && pwd)
fi
if [ "$gpus" -gt 0 ]; then
  # Jittor downloads cutlass from its own server at the first CUDA import (it is neither on PyPI nor in
  # jittor-offline), which fails offline; jittor uses no cutlass kernel, so skip it unless told otherwise.
  export use_cutlass=${use_cutlass:-0}
  # jittor takes the toolkit from nvcc's folder: a wrapper script on PATH hides /usr/local/cuda/lib64.
  if [ -z "${nvcc_path:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then export nvcc_path=/usr/local/cuda/bin/nvcc; fi
fi

# 1. The project's environment, as bootstrap.sh makes it (its jittor compile includes CUDA on a GPU machine), or
# an interpreter that already has the pinned packages (GPU_CHECK_PYTHON).
py=${GPU_CHECK_PYTHON:-.venv/bin/python}
environment() {
  if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
    PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} "$py" -c 'import numpy, jittor, faiss, cv2, scipy, sklearn, skimage, safetensors, uss; jittor.flags.use_cuda = jittor.has_cuda; assert numpy.__version__ < "2", "numpy " + numpy.__version__ + ": jittor needs numpy<2"'
  else
    bash scripts/bootstrap.sh
  fi
}
t=$(date +%s)
log "set-up: ${GPU_CHECK_PYTHON:-scripts/bootstrap.sh} (log: $setup_log)"
cuda_major=$( { "${nvcc_path:-nvcc}" --version 2>/dev/null || true; } | sed -n 's/.*release \([0-9]*\).*/\1/p')
if environment >> "$setup_log" 2>&1; then
  row environment ok $(( $(date +%s) - t )) "${GPU_CHECK_PYTHON:+GPU_CHECK_PYTHON=$py}"
elif [ "$gpus" -gt 0 ] && [ "${cuda_major:-0}" -ge 13 ] \
    && "$py" benchmarks/gpu_check.py patch-jittor-cuda13 >> "$setup_log" 2>&1 && environment >> "$setup_log" 2>&1; then
  # jittor 1.3.11's CUDA core reads two cudaDeviceProp fields that CUDA 13 removed.
  row environment ok $(( $(date +%s) - t )) "jittor patched for CUDA $cuda_major (helper_cuda.h)"
else
  row environment FAILED $(( $(date +%s) - t )) "$(last_line)"
fi
pip=("$py" -m pip --disable-pip-version-check -q)

# 2. faiss's GPU build in place of faiss-cpu. faiss-gpu-cu12 1.12.0 is the newest that accepts numpy<2 (jittor's
# pin); 1.13 and later require numpy>=2.
faiss_gpu=()
t=$(date +%s)
if [ "$gpus" -eq 0 ]; then
  row faiss-gpu skipped 0 "needs CUDA"
elif "$py" -c 'import faiss, sys; sys.exit(0 if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0 else 1)' 2>/dev/null; then
  faiss_gpu=(--faiss-gpu)
  row faiss-gpu ok 0 "already installed"
else
  log "set-up: faiss-gpu-cu12 in place of faiss-cpu"
  # Fetched first, so that faiss-cpu stays where the GPU build cannot be had. Both wheels hold the module faiss:
  # remove both before installing (a reinstall of faiss-cpu may have overwritten the GPU one).
  wheels=$(mktemp -d)
  if "${pip[@]}" download --no-deps faiss-gpu-cu12==1.12.0 -d "$wheels" >> "$setup_log" 2>&1; then
    if { "${pip[@]}" uninstall -y faiss-cpu faiss-gpu-cu12 && "${pip[@]}" install "$wheels"/faiss_gpu_cu12-*.whl numpy==1.26.4; } \
        >> "$setup_log" 2>&1 \
        && "$py" -c 'import faiss, sys; print("faiss", faiss.__version__, "GPUs", faiss.get_num_gpus()); sys.exit(0 if faiss.get_num_gpus() > 0 else 1)' >> "$setup_log" 2>&1; then
      faiss_gpu=(--faiss-gpu)
      row faiss-gpu ok $(( $(date +%s) - t ))
    else
      row faiss-gpu FAILED $(( $(date +%s) - t )) "$(last_line)"
      # Clustering still runs, on the CPU build.
      { "${pip[@]}" uninstall -y faiss-gpu-cu12; "${pip[@]}" install faiss-cpu==1.15.1; } >> "$setup_log" 2>&1 || true
    fi
  else
    row faiss-gpu FAILED $(( $(date +%s) - t )) "$(last_line) (faiss-cpu kept)"
  fi
  rm -rf "$wheels"
fi

# 3. Open MPI for the two-rank stage (the CPU rehearsal runs it with two CPU ranks).
t=$(date +%s)
if [ "$gpus" -eq 1 ]; then
  row open-mpi skipped 0 "one GPU: no mpirun stage"
elif command -v mpirun >/dev/null && command -v mpicc >/dev/null; then
  row open-mpi ok 0 "already installed"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "set-up: Open MPI (openmpi-bin libopenmpi-dev)"
  if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev; } \
      >> "$setup_log" 2>&1; then
    row open-mpi ok $(( $(date +%s) - t ))
  else
    row open-mpi FAILED $(( $(date +%s) - t )) "$(last_line)"
  fi
else
  row open-mpi FAILED 0 "mpirun/mpicc missing; install openmpi-bin and libopenmpi-dev"
fi

command -v "$py" >/dev/null || py=python3  # the summary still prints; the stages are then skipped
args=(run --out "$out" --python "$py" --gpus "$gpus" --deadline $(( start + budget )) --setup "$rows" "${faiss_gpu[@]}")
[ "$tiny" = 1 ] && args+=(--tiny)
[ -n "${GPU_CHECK_STAGES:-}" ] && args+=(--stages "$GPU_CHECK_STAGES")
exec "$py" benchmarks/gpu_check.py "${args[@]}"
