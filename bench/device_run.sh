#!/usr/bin/env bash
# The GPU checks in one run, on a machine lent through the workplace's device tool
# (bench/README.md, "On a lent GPU"): bench/gpu_check.py, then bench/moe.py's GPU part.
#
# That machine's python3 holds PyTorch and Triton but not bitsandbytes, and an older transformers:
# they travel as wheels in .whl/ (`make device-wheels` here; the tool's `carry` takes .whl) and are
# installed into /tmp/site. Figures go to stdout and to $OUT (the tool brings its files back).
#   DEVICE=cpu PYTHON=.venv/bin/python bash bench/device_run.sh   # the script's steps here, at toy
#                                                                  # sizes, with this venv
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-/tmp/scout-device-run}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python="${PYTHON:-python3}"

# The wheels are for the GPU machine's Python 3.12: a dry run uses its own interpreter's packages.
if [ "${DEVICE:-cuda}" != cpu ] && compgen -G ".whl/*.whl" >/dev/null; then
	"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
		--target /tmp/site .whl/*.whl || exit 1
	export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
{ nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv \
	|| echo "nvidia-smi: not here"; } 2>/dev/null | tee "$out/versions.txt"
# transformers checks its dependencies' versions on import: a mismatch stops here, said plainly.
if ! "$python" -c 'import bitsandbytes, torch, transformers, triton
print("torch", torch.__version__, "| transformers", transformers.__version__,
      "| bitsandbytes", bitsandbytes.__version__, "| triton", triton.__version__)' \
	2>&1 | tee -a "$out/versions.txt"; then
	echo "device_run: the packages above do not import together: nothing was run" >&2
	exit 1
fi

status=0
if [ "${DEVICE:-cuda}" = cpu ]; then
	check=(--device cpu) moe=(--skip-cpu --gpu-shape-on-cpu)
else
	check=() moe=(--skip-cpu)
fi
timeout "${CHECK_SECONDS:-240}" "$python" bench/gpu_check.py "${check[@]}" 2>&1 \
	| tee "$out/gpu_check.txt" || status=1
timeout "${MOE_SECONDS:-300}" "$python" bench/moe.py "${moe[@]}" 2>&1 \
	| tee "$out/moe.txt" || status=1
exit $status
