"""Cold start: what `import function_app` costs, against azure.functions alone, and proof that
the heavy SDKs are imported where used, not when the app is loaded.

    python -m bench.cold_start [--runs 7]

Each figure is the median of --runs fresh interpreters (`python -X importtime -c "import X"`,
from the repository root). "import time" is the sum of the cumulative times of the top-level
imports the interpreter reports (its own start-up modules included, so the three lines compare
like with like); "reclaim's share" is function_app minus azure.functions, which the Functions
Python worker has loaded anyway. The SDK list shows what each one would add if it were imported at
load time, and that `import function_app` leaves every one of them out of sys.modules.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from bench.common import REPO_ROOT, figure, header

HEAVY_SDKS = (
    "msal",
    "azure.identity",
    "azure.data.tables",
    "azure.storage.queue",
    "azure.keyvault.secrets",
    "requests",
    "ldap3",
)


@dataclass(frozen=True)
class ImportCost:
    total_ms: float  # sum of the top-level cumulative times
    module_ms: float  # the cumulative time on the module's own line
    wall_ms: float  # the whole interpreter, start to exit


def import_cost(module: str) -> ImportCost:
    code = f"import {module}" if module else "pass"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = (time.perf_counter() - started) * 1000
    total = own = 0.0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, raw_name = line[len("import time:") :].split("|")
        if not cumulative.strip().isdigit():
            continue  # the header line
        if raw_name[1:2] != " ":  # one space after the bar: a top-level import
            total += int(cumulative) / 1000
        if raw_name.strip() == module:
            own = int(cumulative) / 1000
    return ImportCost(total, own, wall)


def median_cost(module: str, runs: int) -> ImportCost:
    costs = [import_cost(module) for _ in range(runs)]
    return ImportCost(
        statistics.median(c.total_ms for c in costs),
        statistics.median(c.module_ms for c in costs),
        statistics.median(c.wall_ms for c in costs),
    )


def loaded_after_import(module: str, candidates: tuple[str, ...]) -> dict[str, bool]:
    code = (
        f"import json, sys, {module}; "
        f"print(json.dumps({{m: m in sys.modules for m in {list(candidates)!r}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    header("cold start: importing the function app")
    if not (REPO_ROOT / "function_app.py").exists():
        print("SUMMARY cold_start: function_app.py does not exist yet; nothing to measure")
        raise SystemExit(1)

    bare = median_cost("", args.runs)
    functions = median_cost("azure.functions", args.runs)
    app = median_cost("function_app", args.runs)
    print(f"median of {args.runs} fresh interpreters each:")
    figure("python -c pass: import time / wall", f"{bare.total_ms:.0f} / {bare.wall_ms:.0f} ms")
    figure(
        "import azure.functions: import time / wall",
        f"{functions.total_ms:.0f} / {functions.wall_ms:.0f} ms",
    )
    figure("import function_app: import time / wall", f"{app.total_ms:.0f} / {app.wall_ms:.0f} ms")
    share = app.total_ms - functions.total_ms
    figure("reclaim's share (function_app - azure.functions)", f"{share:.0f} ms")

    loaded = loaded_after_import("function_app", HEAVY_SDKS)
    print("heavy SDKs: cost when imported alone, and loaded by `import function_app`?")
    for sdk in HEAVY_SDKS:
        extra = median_cost(sdk, max(3, args.runs // 2)).total_ms - bare.total_ms
        figure(f"{sdk}: +{extra:.0f} ms alone", "LOADED" if loaded[sdk] else "not loaded")
    together = median_cost(", ".join(HEAVY_SDKS), args.runs).total_ms - bare.total_ms
    figure("all of them together", f"+{together:.0f} ms")
    heavy_loaded = [sdk for sdk, yes in loaded.items() if yes]
    verdict = "none of them" if not heavy_loaded else f"LOADED: {', '.join(heavy_loaded)}"
    print(
        f"SUMMARY cold_start: import function_app {app.total_ms:.0f} ms vs azure.functions alone "
        f"{functions.total_ms:.0f} ms (reclaim adds {share:.0f} ms); heavy SDKs imported at load: "
        f"{verdict} (importing them at load would add {together:.0f} ms)"
    )


if __name__ == "__main__":
    main()
