"""Remote vs local: time to first token and decode tokens/s of one tiny Llama 4 both ways.

    .venv/bin/python bench/remote.py                 # needs .venv-vllm (make vllm-venv), ~3 min
    .venv/bin/python bench/remote.py --runs 7 --tokens 128

Builds the tiny random Llama 4 the server tests use (`tests/remote`: head_dim 64, 256-token
chunks), starts `vllm serve` from `.venv-vllm` on 127.0.0.1 (`--enforce-eager`, bf16, vLLM's CPU
build), and asks the same question about the same photo, greedy, `--tokens` new tokens, through
`RemoteEngine` (the server) and `LocalLlama4Engine` (in-process, bf16 on the CPU), alternating,
`--runs` times after one warm-up each. Prints the median time to first token and decode tokens/s
of each, and their ratios. Both engines measure as the app does (`Timings`): TTFT from the
request to the first streamed text, tokens/s over the rest. The two processes share the
machine's cores, so the figures compare the paths, not vLLM on a GPU.

Benchmarks print figures and never judge speed (see bench/README.md).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.messages import ChatTurn, Role  # noqa: E402
from app.inference.engine import CancelToken, GenerationRequest, run_to_end  # noqa: E402
from tests.remote.conftest import (  # noqa: E402
    MAX_MODEL_LEN,
    MODEL_NAME,
    VLLM_BIN,
    VLLM_TEXT_OVERRIDES,
    _free_port,
    _server_env,
    _stop,
    _wait_until_ready,
    favour_plain_tokens,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    if not VLLM_BIN.exists():
        print(f"{VLLM_BIN} is missing: run `make vllm-venv` first.")
        return 1
    from PIL import Image

    from app.inference.local_engine import LocalLlama4Engine
    from app.inference.remote_engine import RemoteEngine
    from app.inference.tiny import build_tiny_llama4

    with tempfile.TemporaryDirectory(prefix="scout-remote-bench-") as work:
        folder = Path(work)
        model_dir = build_tiny_llama4(folder / "model", text_overrides=dict(VLLM_TEXT_OVERRIDES))
        favour_plain_tokens(model_dir)
        photo = folder / "photo.jpg"
        Image.effect_mandelbrot((640, 480), (-2.0, -1.0, 1.0, 1.0), 60).convert("RGB").save(photo)
        key = f"bench-{secrets.token_hex(8)}"
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}/v1"
        log_path = folder / "vllm.log"
        command = [
            str(VLLM_BIN), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
            "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "bfloat16",
            "--served-model-name", MODEL_NAME, "--api-key", key, "--enforce-eager",
        ]  # fmt: skip
        started = time.monotonic()
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                command, cwd=folder, env=_server_env(folder / "cache"),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, process_group=0,
            )  # fmt: skip
        try:
            _wait_until_ready(server, base_url, key, log_path)
            print(f"vllm serve ready in {time.monotonic() - started:.0f} s")
            engines = {
                "remote (vLLM, loopback)": RemoteEngine(base_url, MODEL_NAME, api_key=key),
                "local (in-process)": LocalLlama4Engine(
                    model_dir, quantization="bf16", device="cpu"
                ),
            }
            for engine in engines.values():
                engine.load(lambda _p: None, CancelToken())
            turns = (ChatTurn(Role.USER, "Describe this picture in detail.", (photo,)),)
            request = GenerationRequest(turns, max_new_tokens=args.tokens, temperature=0.0)
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in engines}
            for run in range(args.runs + 1):  # run 0 warms both up
                for name, engine in engines.items():
                    result = run_to_end(engine.generate(request, CancelToken()), lambda _c: None)
                    timing = (result.timings.ttft_s, result.timings.decode_tokens_per_s)
                    if run:
                        results[name].append(timing)
            print(
                f"{args.runs} runs each after a warm-up, {args.tokens} new tokens, one 640x480 "
                f"photo, greedy; medians:"
            )
            medians = {}
            for name, rows in results.items():
                ttft = statistics.median(r[0] for r in rows)
                rate = statistics.median(r[1] for r in rows)
                medians[name] = (ttft, rate)
                print(f"  {name:<26} TTFT {ttft * 1000:7.1f} ms   decode {rate:7.1f} tok/s")
            (remote_ttft, remote_rate), (local_ttft, local_rate) = medians.values()
            print(
                f"  remote / local: TTFT ×{remote_ttft / local_ttft:.2f}, "
                f"tokens/s ×{remote_rate / local_rate:.2f}"
            )
            for engine in engines.values():
                engine.unload()
        finally:
            _stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
