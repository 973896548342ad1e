"""Cold start of `prodcat predict`: one title through a fresh process, against `python -c "import torch"`
measured in the same run, alternating, several rounds (target: at most 2x the torch import).

Variants: an exported model (`--model`), the run folder it came from (`--run`), and a title that is in the
embedding cache (read, not encoded). Writes nothing outside bench/out/cold_start/.

    .venv/bin/python bench/cold_start.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OUT = ROOT / "bench" / "out" / "cold_start"
NEW_TITLE = "Damen Laufschuhe schwarz Gr. 39 Neu\n"


def timed(cmd: list[str], stdin: str | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, input=stdin, text=True, check=True, capture_output=True, cwd=ROOT,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    return time.perf_counter() - t


def prepare() -> tuple[Path, Path, str]:
    """A linear head on the bundled sample and its export (built once), and a title from its cache."""
    run, model = OUT / "linear", OUT / "model"
    if not (run / "best.pt").exists():
        subprocess.run([str(BIN / "prodcat"), "train", "--no-config", "--data", "data/lspc_sample", "--head", "linear",
                        "--epochs", "2", "--out", str(run), "--overwrite"], check=True, cwd=ROOT)  # fmt: skip
    if not (model / "prodcat_model.json").exists():
        subprocess.run([str(BIN / "prodcat"), "export", "--run", str(run), "--out", str(model), "--overwrite"],
                       check=True, cwd=ROOT)  # fmt: skip
    from datasets import load_from_disk

    return run, model, load_from_disk(str(ROOT / "data" / "lspc_sample"))["test"][0]["text"] + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    run, model, cached_title = prepare()
    py, prodcat = str(BIN / "python"), str(BIN / "prodcat")
    variants = {
        'python -c "import torch"': ([py, "-c", "import torch"], None),
        "predict --model (new title)": ([prodcat, "predict", "--model", str(model)], NEW_TITLE),
        "predict --run (new title)": ([prodcat, "predict", "--run", str(run)], NEW_TITLE),
        "predict --model (cached title)": ([prodcat, "predict", "--model", str(model)], cached_title),
    }
    for cmd, stdin in variants.values():  # warm the page cache once
        timed(cmd, stdin)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):  # alternate, so drift on a shared machine hits every variant alike
        for name, (cmd, stdin) in variants.items():
            times[name].append(timed(cmd, stdin))
    base = statistics.median(times['python -c "import torch"'])
    print(f"# cold start, {args.rounds} rounds, medians — {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{os.cpu_count()} CPUs\n")  # fmt: skip
    print("| command | median s | min s | ratio to import torch |")
    print("|---|---:|---:|---:|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} | {statistics.median(ts) / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
