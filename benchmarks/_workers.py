"""What the side-by-side benchmarks (``compare_gensbi.py``, ``compare_sbi.py``) and their
workers share: a worker process spoken to one JSON line at a time, the separate venv another
library lives in, and the atomic writing of the reports.

Standard library only: the other libraries' workers import it from their own venvs (a script's
folder is on ``sys.path``, so ``import _workers`` finds this file from any of them).
"""

import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 2**20


def max_rss_mib() -> float:
    # Linux reports kilobytes, macOS bytes.
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB


class Stopwatch:
    """Wall-clock and CPU seconds of a ``with`` block. CPU time adds up every thread of this
    process, so on a shared machine it shows the work done where wall time shows the wait."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def serve(worker) -> None:
    """Answer JSON requests from stdin on the real stdout; route all other output to stderr.

    A request is ``{"cmd": name, "args": {...}}``; the answer ``{"ok": true, "result": ...}``
    or ``{"ok": false, "error": traceback}``. ``{"cmd": "exit"}`` ends the loop."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request["cmd"] == "exit":
            break
        try:
            if request["cmd"].startswith("_"):
                raise ValueError(f"unknown command {request['cmd']!r}")
            reply = {"ok": True, "result": getattr(worker, request["cmd"])(**request["args"])}
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")


class WorkerError(RuntimeError):
    pass


class Worker:
    """A worker subprocess spoken to one JSON line at a time; its stderr goes to a log file.
    It runs in ``cwd`` (default: the repository root)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict,
                 cwd: Path = REPO):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            cwd=cwd, env=env,
        )

    def _tail(self, lines: int = 40) -> str:
        self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def call(self, cmd: str, **args):
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, "args": args}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise WorkerError(
                f"the {self.name} worker exited ({self.proc.poll()}) during {cmd!r}; the end of "
                f"its log ({self.log_path}):\n{self._tail()}"
            )
        reply = json.loads(line)
        if not reply["ok"]:
            raise WorkerError(f"the {self.name} worker failed in {cmd!r}:\n{reply['error']}")
        return reply["result"]

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def apply_defaults(args, defaults: dict) -> None:
    """Fill the command-line options left unset (``None``) from ``defaults``, a profile such
    as a benchmark's full or ``--small`` settings."""
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)


def run_checked(argv, **kwargs) -> str:
    print("$ " + shlex.join(str(a) for a in argv), flush=True)
    result = subprocess.run([str(a) for a in argv], check=True, text=True, **kwargs)
    return result.stdout


def ensure_venv(venv: Path, package: str, version: str, requirements: Path, driver: str,
                first: tuple[str, ...] = ()) -> Path:
    """The Python of a separate venv holding ``package==version``.

    If the venv is missing it is created with ``python3 -m venv``; the requirements in ``first``
    are installed before anything else (e.g. a CPU build of torch, so that nothing else drags in
    another one), then the pinned ``requirements`` file, or ``package==version`` with ``first``
    kept as constraints when that file does not exist yet. In the latter case the versions pip
    resolved are written to ``requirements``, with a header that names ``driver``."""
    python = venv / "bin" / "python"
    if not python.exists():
        base = shutil.which("python3") or sys.executable
        print(f"Creating the {package} venv {venv} (one-time setup)", flush=True)
        run_checked([base, "-m", "venv", venv])
        if first:
            run_checked([python, "-m", "pip", "install", *first])
        if requirements.exists():
            run_checked([python, "-m", "pip", "install", "-r", requirements])
        else:
            constraints = venv / "first-constraints.txt"
            constraints.write_text("".join(f"{r}\n" for r in first))
            run_checked([python, "-m", "pip", "install", f"{package}=={version}",
                         "-c", constraints])
    found = run_checked(
        [python, "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        stdout=subprocess.PIPE,
    ).strip()
    if found != version:
        raise SystemExit(
            f"{venv} has {package} {found}, not {version}; remove the venv to recreate it."
        )
    if not requirements.exists():
        frozen = run_checked([python, "-m", "pip", "freeze"], stdout=subprocess.PIPE)
        # Pin without local labels (torch's "+cpu"): "==2.13.0" still accepts the installed
        # 2.13.0+cpu, and stays installable where only the public release exists.
        frozen = re.sub(r"^(\S+==[^+\s]+)\+\S+$", r"\1", frozen, flags=re.MULTILINE)
        installs = "".join(f"`pip install {r}`, then " for r in first)
        where = venv.relative_to(REPO) if venv.is_relative_to(REPO) else venv
        header = (
            f"# {package} {version} and the versions pip resolved for it ({installs}"
            f"`pip install {package}=={version}`,\n# Python {platform.python_version()}, "
            f"{datetime.date.today().isoformat()}); {driver} installs these into {where}.\n"
        )
        from gensbi_eqx._atomic import atomic_writer

        with atomic_writer(requirements) as f:
            f.write((header + frozen).encode())
        print(f"wrote {requirements}", flush=True)
    return python


def write_outputs(out: Path, results: dict, table, echo: bool = True) -> None:
    """``OUT.json`` (everything) and ``OUT.md`` (``table(results)``), each written atomically;
    with ``echo`` the report is also printed."""
    from gensbi_eqx._atomic import atomic_writer

    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out.parent / (out.name + ".json"), out.parent / (out.name + ".md")
    with atomic_writer(json_path) as f:
        f.write((json.dumps(results, indent=2, default=float) + "\n").encode())
    report = table(results)
    with atomic_writer(md_path) as f:
        f.write(report.encode())
    if echo:
        print("\n" + report, flush=True)
        print(f"wrote {json_path} and {md_path}", flush=True)
