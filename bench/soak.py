"""Soak test: random SIGKILL and SIGINT chains against `prodcat embed` and `prodcat train`, and concurrent embeds
of different datasets into one cache; every result is checked against an uninterrupted reference run.

    .venv/bin/python bench/soak.py --embed-kills 30 --train-kills 20 --ctrl-c 20 --pairs 10

What is counted:
- kills / Ctrl-Cs: signals that landed while the process was still running (one that finished first, or
  whose work was done and exited 0, is not counted); every Ctrl-C must end the process with exit 130
  within --ctrl-c-limit seconds. Children start with SIGINT at its default, as in a terminal.
- rows lost: dataset rows whose vector is missing from the finished cache or differs from the reference.
- mismatches: finished caches whose vectors are not bit-identical to the reference, or finished training
  runs whose best.pt weights and metrics differ from the uninterrupted run.
- concurrent pairs: two embeds of different datasets started together into one fresh cache; both must
  exit 0 and both datasets must read back complete.
Real encoder (use-multilingual) and the bundled sample; nothing is mocked.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PRODCAT = [sys.executable, "-m", "prodcat_pipeline"]
SAMPLE = ROOT / "data" / "lspc_sample"


def prodcat_cmd(*args: str) -> list[str]:
    return [*PRODCAT, *args, "--no-config"]


def embed_cmd(data: Path, cache: Path, shard: int) -> list[str]:
    return prodcat_cmd("embed", "--data", str(data), "--cache-dir", str(cache), "--shard-size", str(shard))


def train_cmd(cache: Path, out: Path, epochs: int, resume: bool) -> list[str]:
    args = ["train", "--data", str(SAMPLE), "--cache-dir", str(cache), "--out", str(out), "--head", "v2"]
    args += ["--epochs", str(epochs), "--save-every", "3", "--seed", "1"]
    return prodcat_cmd(*args, *(["--resume"] if resume else []))


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal, even when the soak runs in the background


def start(cmd: list[str]) -> subprocess.Popen:
    # a background shell starts the soak with SIGINT ignored, which its children would inherit
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=_default_sigint)  # fmt: skip


def signal_at(proc: subprocess.Popen, sig: int, after: float) -> tuple[bool, float | None, str]:
    """Send `sig` after `after` seconds unless the process ended first: (landed, seconds it took to exit,
    the end of its stderr)."""
    try:
        proc.wait(timeout=after)
        return False, None, ""
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(sig)
    t = time.perf_counter()
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # a hang: killed, and reported as 60 s
        proc.kill()
        return True, 60.0, proc.communicate()[1][-300:]
    return True, time.perf_counter() - t, err[-300:]


def record_ctrl_c(report: dict, proc: subprocess.Popen, took: float, err: str, limit: float) -> None:
    report["ctrl_c_exit_seconds"].append(round(took, 2))
    if proc.returncode != 130 or took > limit:
        report["ctrl_c_bad_exit"] += 1
        report["ctrl_c_bad"].append({"rc": proc.returncode, "seconds": round(took, 2), "stderr": err})


def run_to_completion(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def cache_vectors(data: Path, cache: Path) -> dict[str, np.ndarray]:
    """row id -> vector for every row of `data` in the cache (raises when the cache does not read back)."""
    from prodcat_pipeline.config import load_config
    from prodcat_pipeline.reader import load_cache

    cfg = load_config(overrides={"data.path": str(data), "cache.dir": str(cache)})
    cached = load_cache(cfg, verify=True)
    vectors = cached.store.gather(cached.column("vec"), dtype=np.float16)
    return dict(zip(cached.rows["row_id"].to_pylist(), vectors, strict=True))


def compare(got: dict, want: dict) -> tuple[int, bool]:
    """(rows lost, whether all vectors are bit-identical)."""
    lost = sum(1 for r in want if r not in got or not np.allclose(got[r], want[r], atol=2e-3))
    identical = lost == 0 and all(np.array_equal(got[r], want[r]) for r in want)
    return lost, identical


def best_weights(out: Path) -> dict:
    import torch

    return torch.load(out / "best.pt", map_location="cpu", weights_only=True)["head_state"]


def same_run(a: Path, b: Path) -> bool:
    wa, wb = best_weights(a), best_weights(b)
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    same_weights = wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)
    return same_weights and ma["test"] == mb["test"] and ma["best_epoch"] == mb["best_epoch"]


# ---------------------------------------------------------------- the chains


def interrupted_chains(name: str, make_cmd, check, window: tuple[float, float], kills: int, ctrl_cs: int, rng, report,
                       limit: float, finish_after: float = 0.0):  # fmt: skip
    """Chains of runs of one command, each interrupted at random (SIGKILL or SIGINT `window` seconds after
    launch) and re-run until a run finishes (or, with probability `finish_after` after an interrupt, re-run
    once more to the end); then `check(chain)` -> (rows lost, whether it matches the reference).
    `make_cmd(chain, first)` is the command line of a chain's next run."""
    landed = {"kill": 0, "ctrl-c": 0}
    chain = 0
    while landed["kill"] < kills or landed["ctrl-c"] < ctrl_cs:
        chain += 1
        first, want_finish = True, False
        while True:
            want = [s for s, n in (("kill", kills), ("ctrl-c", ctrl_cs)) if landed[s] < n]
            kind = rng.choice(want) if want and not want_finish else None
            proc = start(make_cmd(chain, first))
            first = False
            if kind is None:
                _, err = proc.communicate()
                if proc.returncode != 0:
                    raise SystemExit(f"{name} chain {chain}: final run failed: {err[-400:]}")
                break
            sig = signal.SIGKILL if kind == "kill" else signal.SIGINT
            hit, took, err = signal_at(proc, sig, rng.uniform(*window))
            if not hit or proc.returncode == 0:  # it finished first (or its work was done): the chain is complete
                if proc.returncode != 0:
                    raise SystemExit(f"{name} chain {chain}: run failed: {proc.stderr.read()[-400:]}")
                break
            landed[kind] += 1
            if kind == "ctrl-c":
                record_ctrl_c(report, proc, took, err, limit)
            if rng.random() < finish_after:  # end the chain here: it is checked, the next starts fresh
                want_finish = True
        lost, matches = check(chain)
        report[f"{name}_chains"] += 1
        report["rows_lost"] += lost
        report["mismatches"] += int(not matches)
    report[f"{name}_kills"] += landed["kill"]
    report["ctrl_c"] += landed["ctrl-c"]


def embed_chains(tmp: Path, kills: int, ctrl_cs: int, shard: int, reference: dict, rng, report, limit: float):
    """`prodcat embed` into a fresh cache per chain; each finished cache is compared row by row."""

    def check(chain: int) -> tuple[int, bool]:
        cache = tmp / f"embed-chain-{chain}"
        lost, identical = compare(cache_vectors(SAMPLE, cache), reference)
        shutil.rmtree(cache, ignore_errors=True)
        return lost, identical

    def cmd(chain: int, first: bool) -> list[str]:
        return embed_cmd(SAMPLE, tmp / f"embed-chain-{chain}", shard)  # a killed embed resumes by itself

    interrupted_chains("embed", cmd, check, (0.5, 7.0), kills, ctrl_cs, rng, report, limit, finish_after=0.2)


def train_chains(tmp: Path, cache: Path, kills: int, ctrl_cs: int, epochs: int, reference: Path, rng, report, limit):
    """`prodcat train` into a fresh folder per chain, resumed after each interrupt; the finished run is
    compared with the uninterrupted one."""

    def check(chain: int) -> tuple[int, bool]:
        out = tmp / f"train-chain-{chain}"
        same = same_run(out, reference)
        shutil.rmtree(out, ignore_errors=True)
        return 0, same

    def cmd(chain: int, first: bool) -> list[str]:
        return train_cmd(cache, tmp / f"train-chain-{chain}", epochs, resume=not first)

    interrupted_chains("train", cmd, check, (1.0, 8.0), kills, ctrl_cs, rng, report, limit)


def concurrent_pairs(tmp: Path, pairs: int, shard: int, datasets: list[Path], references: list[dict], rng, report):
    """Two embeds of different datasets started together (random stagger) into one fresh cache."""
    for i in range(pairs):
        cache = tmp / f"pair-{i}"
        procs = []
        for d in datasets:
            procs.append(start(embed_cmd(d, cache, shard)))
            time.sleep(rng.uniform(0, 1.5))
        results = [p.communicate() for p in procs]
        if any(p.returncode != 0 for p in procs):
            report["pair_failures"] += 1
            report["pair_errors"].append([r[1][-300:] for r in results])
        else:
            for d, ref in zip(datasets, references, strict=True):
                lost, identical = compare(cache_vectors(d, cache), ref)
                report["rows_lost"] += lost
                report["mismatches"] += int(not identical)
        report["concurrent_pairs"] += 1
        shutil.rmtree(cache, ignore_errors=True)


def make_datasets(tmp: Path) -> list[Path]:
    """Two different synthetic datasets (different seeds: mostly different titles, some shared)."""
    paths = []
    for seed in (1, 2):
        out = tmp / f"synthetic-{seed}"
        cmd = [sys.executable, "-m", "prodcat_pipeline.synthetic", "--rows", "3000", "--seed", str(seed)]
        subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True, cwd=ROOT)
        paths.append(out)
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embed-kills", type=int, default=30)
    ap.add_argument("--train-kills", type=int, default=20)
    ap.add_argument("--ctrl-c", type=int, default=20, help="SIGINTs in all (split between embed and train)")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--shard-size", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--ctrl-c-limit", type=float, default=5.0, help="seconds a Ctrl-C may take to end a run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "soak.json")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    report = {
        "embed_kills": 0, "train_kills": 0, "ctrl_c": 0, "concurrent_pairs": 0, "embed_chains": 0,
        "train_chains": 0, "rows_lost": 0, "mismatches": 0, "ctrl_c_bad_exit": 0, "pair_failures": 0,
        "ctrl_c_exit_seconds": [], "pair_errors": [], "ctrl_c_bad": [],
    }  # fmt: skip
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="prodcat-soak-") as tmp:
        tmp = Path(tmp)
        ref_cache = tmp / "reference-cache"
        for cmd in (
            embed_cmd(SAMPLE, ref_cache, args.shard_size),
            train_cmd(ref_cache, tmp / "ref-run", args.epochs, False),
        ):
            done = run_to_completion(cmd)
            if done.returncode != 0:
                raise SystemExit(f"reference run failed: {done.stderr[-600:]}")
        reference = cache_vectors(SAMPLE, ref_cache)
        print(f"reference: {len(reference):,} rows embedded and a v2 head trained ({time.perf_counter() - t0:.0f}s)")

        embed_chains(
            tmp, args.embed_kills, args.ctrl_c // 2, args.shard_size, reference, rng, report, args.ctrl_c_limit
        )
        print(f"embed: {report['embed_kills']} kills, {report['ctrl_c']} Ctrl-Cs in {report['embed_chains']} chains")
        train_chains(tmp, ref_cache, args.train_kills, args.ctrl_c - args.ctrl_c // 2, args.epochs, tmp / "ref-run",
                     rng, report, args.ctrl_c_limit)  # fmt: skip
        print(
            f"train: {report['train_kills']} kills in {report['train_chains']} chains; Ctrl-Cs so far {report['ctrl_c']}"
        )

        datasets = make_datasets(tmp)
        references = []
        for i, d in enumerate(datasets):
            run_to_completion(embed_cmd(d, tmp / f"ref-{i}", args.shard_size)).check_returncode()
            references.append(cache_vectors(d, tmp / f"ref-{i}"))
        concurrent_pairs(tmp, args.pairs, args.shard_size, datasets, references, rng, report)

    report["seconds"] = round(time.perf_counter() - t0, 1)
    secs = report["ctrl_c_exit_seconds"]
    report["ctrl_c_exit_max_seconds"] = max(secs) if secs else None
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print()
    print("| kills (embed + train) | Ctrl-Cs | concurrent pairs | rows lost | mismatches | bad Ctrl-C exits | "
          "slowest Ctrl-C exit | pair failures | wall |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {report['embed_kills']} + {report['train_kills']} | {report['ctrl_c']} | {report['concurrent_pairs']} | "
        f"{report['rows_lost']} | {report['mismatches']} | {report['ctrl_c_bad_exit']} | "
        f"{report['ctrl_c_exit_max_seconds']} s | {report['pair_failures']} | {report['seconds'] / 60:.1f} min |"
    )
    failed = report["rows_lost"] or report["mismatches"] or report["ctrl_c_bad_exit"] or report["pair_failures"]
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
