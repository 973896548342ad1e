"""Start-up of `prodcat train` on the 952k synthetic cache: this checkout against an older one (a source folder,
e.g. a `git worktree` of the commit before checksums) in the same run, alternating.

    git worktree add /tmp/base <commit> && .venv/bin/python bench/startup_vs_base.py --base-src /tmp/base

The older code reads caches without xxh3 checksums, so it gets a hard-linked copy of the cache whose manifest
is written in the older format (sha256 fields; the older code does not verify them when it trains).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import synthetic_cache  # noqa: E402
from train_speed import cli_train  # noqa: E402


def old_format_copy(folder: Path, root: Path) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(folder), str(root / folder.name)], check=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.pop("checksum", None)
    for shard in manifest["shards"]:
        shard["sha256"] = shard.pop("xxh3")
        shard.pop("meta_xxh3", None)
    for entry in manifest["datasets"].values():
        entry.pop("index_xxh3", None)
    (root / folder.name / "manifest.json").unlink()  # a hard link to the original: replaced, not edited
    (root / folder.name / "manifest.json").write_text(json.dumps(manifest))
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-src", type=Path, required=True, help="source folder of the older prodcat")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args(argv)
    cfg, cached = synthetic_cache(384)
    old_cfg = cfg.model_copy(deep=True)
    old_cfg.cache.dir = str(old_format_copy(cached.folder, Path(tempfile.gettempdir()) / "prodcat-oldcache"))
    os.chdir(tempfile.gettempdir())  # `python -c` puts the cwd first on sys.path: never this checkout's folder
    times: dict[str, list[float]] = {"base": [], "this": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for name, config in (("base", old_cfg), ("this", cfg)):
                if name == "base":
                    os.environ["PYTHONPATH"] = str(args.base_src.resolve())
                else:
                    os.environ.pop("PYTHONPATH", None)
                times[name].append(cli_train(config, Path(tmp) / f"{name}{i}")[1])
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    torch_s = time.perf_counter() - t
    print(f"`import torch` {torch_s:.2f}s in the same run\n")
    print("| code | best s | median s | all |")
    print("|---|---:|---:|---|")
    for name, v in times.items():
        print(f"| {name} | {min(v):.2f} | {sorted(v)[len(v) // 2]:.2f} | {', '.join(f'{x:.2f}' for x in v)} |")
    median = {name: sorted(v)[len(v) // 2] for name, v in times.items()}
    print(f"\nratio this / base: {min(times['this']) / min(times['base']):.2f}x best, "
          f"{median['this'] / median['base']:.2f}x median")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
