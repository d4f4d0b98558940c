"""What every benchmark prints about the machine it ran on, and small shared helpers."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """One line: cores (nproc), Python version, CPU model."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores (nproc), Python {sys.version.split()[0]}, {cpu_model()}"


def header(title: str) -> None:
    print(f"== {title}")
    print(f"machine: {machine()}")


def figure(name: str, value: str, goal: str = "") -> None:
    """One aligned line: name, value, and the goal it is measured against (if any)."""
    print(f"  {name:<46} {value:>14}" + (f"   (goal {goal})" if goal else ""))
