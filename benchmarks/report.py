"""Machine description, Markdown tables and the files a benchmark run writes."""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.util
import io
import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import threads

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    """CPU, cores, library versions, BLAS (threadpoolctl when installed, else NumPy's build
    config), thread counts and the thread/BLAS environment. Call after the libraries in use
    were imported, so threadpoolctl sees their BLAS."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "allowed_cpus": threads.allowed_cpus(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in ("numpy", "torch", "jax", "jaxlib", "cupy",
                                                       "array_api_compat", "bpx")},
        "env": threads.environment(),
        "loadavg": loadavg(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        info["torch_cuda"] = torch.cuda.is_available()
    info["blas"] = _blas_info()
    info["bpx_source"] = _git_state()
    return info


def _git_state() -> dict[str, Any] | None:
    """The checkout's commit and whether ``bpx/`` has uncommitted changes (the results
    describe the core as it was on disk when the run started)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bpx"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    changed = [line[3:] for line in dirty if line.strip()]
    return {"commit": head or None, "bpx_uncommitted": changed}


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where unsupported)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(name: str) -> str | None:
    if name not in sys.modules and importlib.util.find_spec(name) is None:
        return None
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return getattr(sys.modules.get(name), "__version__", None)


def _blas_info() -> Any:
    try:
        from threadpoolctl import threadpool_info

        return [{k: v for k, v in pool.items() if k in ("user_api", "internal_api", "prefix", "version",
                                                        "num_threads", "threading_layer", "architecture")}
                for pool in threadpool_info()]
    except ImportError:
        pass
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None
    try:
        config = numpy.show_config(mode="dicts")
        return {"numpy_build_blas": config.get("Build Dependencies", {}).get("blas"),
                "note": "pip install threadpoolctl for the runtime BLAS and its thread count"}
    except TypeError:  # NumPy < 1.25: show_config only prints
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            numpy.show_config()
        return {"numpy_show_config": buffer.getvalue()}


def machine_summary(info: dict[str, Any]) -> list[str]:
    """A few Markdown lines describing the machine and settings."""
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    env = ", ".join(f"{k}={v}" for k, v in info["env"].items() if v is not None) or "none set"
    blas = info.get("blas")
    if isinstance(blas, list):
        blas_text = "; ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads"
                              f"{', ' + str(p['architecture']) if p.get('architecture') else ''})"
                              for p in blas if p.get("user_api") == "blas") or "unknown"
    else:
        blas_text = "see JSON"
    lines = [
        f"- machine: {info['cpu']}, {info['cpu_count']} CPUs ({info['allowed_cpus']} allowed to this process); "
        f"Python {info['python']}; {info['platform']}",
        f"- versions: {versions}" + _source_text(info.get("bpx_source")),
        f"- BLAS: {blas_text}" + (f"; torch threads {info['torch_threads']}" if "torch_threads" in info else ""),
        f"- thread/BLAS environment: {env}",
    ]
    if info.get("loadavg"):
        end = info.get("loadavg_end")
        lines.append("- load average at start: " + ", ".join(f"{v:.2f}" for v in info["loadavg"])
                     + (" (at end: " + ", ".join(f"{v:.2f}" for v in end) + ")" if end else ""))
    return lines


def _source_text(source: dict[str, Any] | None) -> str:
    if not source or not source.get("commit"):
        return ""
    changed = source.get("bpx_uncommitted") or []
    listed = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
    return f"; bpx at {source['commit']}" + (f" + uncommitted changes in {listed}" if changed else "")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None) -> str:
    """A Markdown table; ``align`` per column is ``"l"`` or ``"r"`` (default: first left)."""
    align = align or ["l"] + ["r"] * (len(headers) - 1)
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) if a == "l" else v.rjust(w)
                                 for v, w, a in zip(values, widths, align, strict=True)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else (":" + "-" * (w + 1))
                          for w, a in zip(widths, align, strict=True)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits ("–" for None)."""
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:,.0f}"


def write(out_dir: str | Path, name: str, markdown: str, payload: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<name>.md`` and ``<name>.json`` to ``out_dir`` (created); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out / f"{name}.md", out / f"{name}.json"
    md_path.write_text(markdown.rstrip() + "\n")
    payload = {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **payload}
    json_path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    return md_path, json_path


def _json_default(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def logger(quiet: bool) -> Callable[[str], None]:
    """Progress messages to stderr, or nothing with ``--quiet``."""
    if quiet:
        return lambda msg: None
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def publish(case: str, payload: dict[str, Any], markdown: str, args: Any) -> tuple[Path, Path]:
    """Print a case's Markdown and write it with its JSON as ``<case>[-<tag>].md/.json`` to
    ``args.out`` (default :data:`DEFAULT_OUT`)."""
    print(markdown)
    paths = write(args.out or DEFAULT_OUT, case + (f"-{args.tag}" if args.tag else ""), markdown, payload)
    logger(args.quiet)(f"wrote {paths[0]} and {paths[1]}")
    return paths
