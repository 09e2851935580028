#!/bin/sh
# The GPU checks of issue 12 in one short run (about 8 minutes on an H200):
# the CUDA-only tests, then the throughput benchmark for the default model's
# shape and for a random ~1B Llama, each as JSON (ratio against the classic
# recipe, MFU, measured peak memory beside the estimate).
#
# Here, first (CPU; writes bench/carry/, which git ignores):
#     .venv/bin/python -m bench.carry
# Then, on the GPU machine (the device tool's run, carrying bench/carry):
#     sh bench/gpu.sh          # results in $OUT (or bench/results/ when OUT is unset)
# and commit the JSON files under bench/results/ with what they say in the README.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-bench/results}
CARRY=bench/carry
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# The GPU image has torch, transformers, accelerate and peft, not datasets: carried wheels.
$PY -c "import datasets" 2>/dev/null || $PY -m pip install -q --no-index --find-links "$CARRY/wheels" datasets
nvidia-smi -L
$PY - <<'EOF' | tee "$OUT/gpu-versions.txt"
import importlib.util, torch, transformers, accelerate, peft
print("torch", torch.__version__, "transformers", transformers.__version__, "accelerate", accelerate.__version__,
      "peft", peft.__version__)
print("gpu", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
for name in ("bitsandbytes", "flash_attn"):
    print(name, "installed" if importlib.util.find_spec(name) else "not installed")
EOF

echo "== CUDA-only tests"
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_hardware.py tests/test_packing.py 2>&1 | tail -15 \
    | tee "$OUT/gpu-tests.txt"

stamp=$(date +%Y-%m-%d)
gpu=$($PY -c "import torch; print(torch.cuda.get_device_name(0).split()[-1].lower())")
common="--tokenizer $CARRY/smollm2 --data $CARRY/alpaca_1k.json --steps 8"
echo "== throughput, the default model's shape (random weights)"
timeout 200 $PY -m bench.throughput --model default $common --json "$OUT/gpu-$gpu-$stamp-default.json" 2>&1 \
    | grep -v -e Warning -e warn | tail -12
echo "== throughput, a ~1B Llama (random weights)"
timeout 260 $PY -m bench.throughput --model llama-1b $common --no-eager --json "$OUT/gpu-$gpu-$stamp-llama-1b.json" \
    2>&1 | grep -v -e Warning -e warn | tail -12
ls -la "$OUT"
