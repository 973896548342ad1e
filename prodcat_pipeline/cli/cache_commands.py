"""`prodcat cache ls` and `prodcat cache rm`: the embedding caches on disk, their sizes and datasets."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import Command, Group, app

cache_app = typer.Typer(
    cls=Group,
    help="List and remove embedding caches.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(cache_app, name="cache")

CONTEXT = {"help_option_names": ["-h", "--help"]}
CacheDir = Annotated[
    str | None,
    typer.Option("--cache-dir", help="Folder holding the caches (default $PRODCAT_CACHE, else ~/.cache/prodcat)."),
]


def human_size(n: int) -> str:
    """Bytes as du -h would say them: 512 B, 3.1 KiB, 1.2 GiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # unreachable


def _dataset_line(d) -> str:
    rows = f"{d.rows:,} rows" if d.rows is not None else "? rows"
    splits = f" ({', '.join(f'{k} {v:,}' for k, v in d.splits.items())})" if d.splits else ""
    return f"  {d.fingerprint}  {rows}{splits}  {d.source or '(source unknown)'}"


def _caches_table(caches) -> None:
    """One row per cache, at most 80 columns: the key (what `rm` accepts) stands for the folder name, which
    the dataset lines below the table give in full."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("key", overflow="fold", max_width=16)
    table.add_column("encoder", overflow="fold", max_width=16)
    for heading in ("vectors", "dim", "size", "datasets"):
        table.add_column(heading, justify="right", no_wrap=True)
    for c in caches:
        key = c.key or c.name
        if c.damaged:
            table.add_row(key, "damaged", "–", "–", human_size(c.bytes), "–")
        else:
            dim = f"{c.dim} {c.dtype or ''}".strip() if c.dim else "–"
            table.add_row(key, c.encoder or "?", f"{c.vectors:,}", dim, human_size(c.bytes), str(len(c.datasets)))
    Console().print(table)


@cache_app.command("ls", cls=Command, context_settings=CONTEXT)
def cache_ls_command(cache_dir: CacheDir = None):
    """List the embedding caches: encoder, vectors, size on disk, then each cache's folder and datasets.

    Example: prodcat cache ls --cache-dir /data/prodcat-cache
    """
    from ..cache_admin import cache_root, list_caches

    root = cache_root(cache_dir)
    caches = list_caches(root)
    if not caches:
        typer.echo(f"no caches under {root}")
        return
    _caches_table(caches)
    for c in caches:
        when = c.modified.strftime("%Y-%m-%d %H:%M")
        if c.damaged:
            typer.echo(f"{c.name}  (modified {when}): damaged: {c.damaged}")
            continue
        n = len(c.datasets)
        typer.echo(f"{c.name}  (modified {when}): {n} dataset{'s' * (n != 1)}")
        for d in c.datasets:
            typer.echo(_dataset_line(d))
    total = sum(c.bytes for c in caches)
    typer.echo(f"total: {len(caches)} cache{'s' * (len(caches) != 1)}, {human_size(total)} under {root}")


@cache_app.command("rm", cls=Command, context_settings=CONTEXT)
def cache_rm_command(
    target: Annotated[
        str, typer.Argument(metavar="TARGET", help="Cache folder name, key (or unique key prefix) or path.")
    ],
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Remove only this dataset's row index (fingerprint or source path)."),
    ] = None,
    cache_dir: CacheDir = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
):
    """Remove an embedding cache, or with --dataset only one dataset's row index (the vectors stay:
    other datasets may share them). `prodcat cache ls` shows each cache's key.

    Example: prodcat cache rm 294951103ed1 --dataset data/old.parquet
    """
    from ..cache_admin import cache_root, remove_cache, resolve_removal

    root = cache_root(cache_dir)
    cache, ds = resolve_removal(target, root, dataset)  # unknown, ambiguous or foreign: fails before asking
    if ds is not None:
        what = f"dataset {ds.fingerprint} ({ds.source}) from cache {cache.name}"
    elif cache.damaged:
        what = f"damaged cache {cache.folder} ({human_size(cache.bytes)})"
    else:
        what = f"cache {cache.folder} ({cache.vectors:,} vectors, {len(cache.datasets)} datasets)"
    if not yes:
        typer.confirm(f"Remove {what}?", abort=True)
    freed = remove_cache(cache.folder, root, dataset=ds and ds.fingerprint)
    kept = " (its vectors stay in the cache)" if ds is not None else ""
    typer.echo(f"removed {what}: freed {human_size(freed)}{kept}")
