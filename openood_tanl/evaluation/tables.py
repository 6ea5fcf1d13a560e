"""Result tables: one row per OOD set plus group means (OpenOOD's layout), the mean over seeds, leaderboards.

Metrics are in percent (``openood_tanl.metrics.METRIC_COLUMNS``): ``FPR@95`` (OpenOOD's, OOD positive),
``FPR@95(ID+)`` (the CLIP-OOD papers', ID positive), ``AUROC``, ``AUPR_IN``, ``AUPR_OUT``, ``ACC``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ..metrics import METRIC_COLUMNS

__all__ = ["metrics_table", "summarise", "seed_summary", "group_mean_name", "is_group_mean", "leaderboard_columns",
           "leaderboard_table",
           "markdown_table", "settings_markdown", "save_figure", "LEADERBOARD_COLUMNS", "HIGHER_IS_BETTER"]

#: Whether a higher value is better, per metric.
HIGHER_IS_BETTER = {"FPR@95": False, "FPR@95(ID+)": False, "AUROC": True, "AUPR_IN": True, "AUPR_OUT": True,
                    "ACC": True}

#: Leaderboard columns: OpenOOD's (near/far-OOD AUROC, ID accuracy) plus both FPR@95 conventions.
LEADERBOARD_COLUMNS = (("nearood", "AUROC"), ("farood", "AUROC"), ("nearood", "FPR@95"), ("farood", "FPR@95"),
                       ("nearood", "FPR@95(ID+)"), ("farood", "FPR@95(ID+)"), ("id", "ACC"))


def metrics_table(rows: dict[str, dict]) -> pd.DataFrame:
    """{OOD set name: {"group": ..., metric: value}} -> a table indexed by ``dataset``."""
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "dataset"
    return table


def group_mean_name(group: str) -> str:
    """Row name of a group's mean: 'near' -> 'nearood', as OpenOOD names them."""
    return str(group) if str(group).endswith("ood") else f"{group}ood"


def is_group_mean(table: pd.DataFrame) -> pd.Series:
    """Boolean mask of the group-mean rows of a ``summarise``d table (index or ``dataset`` column holds names)."""
    names = table["dataset"] if "dataset" in table.columns else pd.Series(table.index, index=table.index)
    return names == table["group"].map(group_mean_name)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Add one mean row per group (``nearood``, ``farood``, ...) after that group's datasets, OpenOOD style."""
    parts = []
    for group, members in table.groupby("group", sort=False):
        parts.append(members)
        mean = members[list(METRIC_COLUMNS)].mean().to_frame().T
        mean.index = [group_mean_name(group)]
        mean.insert(0, "group", group)
        parts.append(mean)
    out = pd.concat(parts)
    out.index.name = "dataset"
    return out


def seed_summary(per_seed: Sequence[pd.DataFrame], seeds: Sequence[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-seed ``summarise``d tables -> (summary: the mean over seeds and, with several, ``<metric>_std``; the long
    table with a ``seed`` column)."""
    long = pd.concat([table.assign(seed=seed).reset_index() for table, seed in zip(per_seed, seeds)],
                     ignore_index=True)
    grouped = long.groupby(["dataset", "group"], sort=False)[list(METRIC_COLUMNS)]
    summary = grouped.mean()
    if long["seed"].nunique() > 1:
        summary = summary.join(grouped.std(ddof=1).add_suffix("_std"))
    return summary.reset_index(level="group"), long


def leaderboard_columns(groups: Sequence[str]) -> list[tuple[str, str]]:
    """(split, metric) columns of a leaderboard for OOD groups ``groups`` (their mean rows): AUROC, FPR@95 and
    FPR@95(ID+) of each, then the ID accuracy; ``LEADERBOARD_COLUMNS`` for OpenOOD's near and far."""
    means = [group_mean_name(group) for group in groups]
    return [(mean, metric) for metric in ("AUROC", "FPR@95", "FPR@95(ID+)") for mean in means] + [("id", "ACC")]


def leaderboard_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per method, columns ``<benchmark> <split> <metric>`` from ``compare_methods`` results: every OOD
    group's mean (``leaderboard_columns``), whatever the groups are called.

    ID accuracy is the mean over the OOD runs of the ACC column (the ID set is scored once per OOD set).
    """
    rows: dict[str, dict[str, float]] = {}
    for (method, benchmark), part in results.groupby(["method", "benchmark"], sort=False):
        row = rows.setdefault(method, {})
        indexed = part.set_index("dataset")
        for split, metric in leaderboard_columns(list(dict.fromkeys(part["group"]))):
            if split == "id":
                value = part.loc[~is_group_mean(part), metric].mean()
            else:
                value = indexed.loc[split, metric]
            row[f"{benchmark} {split} {metric}"] = float(value)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "method"
    return table


def markdown_table(table: pd.DataFrame, digits: int = 2, bold: bool = True) -> str:
    """Markdown of a leaderboard (or any table indexed by method, or by several keys); with ``bold``, the best value
    of each metric column in bold. Numbers get ``digits`` decimals, empty cells stay empty."""
    header = [name or "" for name in table.index.names] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {}
    for column in table.columns if bold else ():
        metric = next((m for m in sorted(HIGHER_IS_BETTER, key=len, reverse=True) if str(column).endswith(m)), None)
        values = table[column].dropna()
        if metric and len(values):
            best[column] = values.max() if HIGHER_IS_BETTER[metric] else values.min()
    for key, row in table.iterrows():
        cells = [str(k) for k in (key if isinstance(key, tuple) else (key,))]
        for column in table.columns:
            value = row[column]
            if isinstance(value, str):
                text = value
            else:
                text = "" if pd.isna(value) else f"{value:.{digits}f}"
            cells.append(f"**{text}**" if column in best and value == best[column] else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def settings_markdown(methods) -> str:
    """A short markdown line per method (label -> ``MethodConfig``, or a run record's ``methods`` entry: ``method``
    and ``hyperparameters``) naming its key settings (``methods.settings_line``), for under a leaderboard."""
    from ..methods import settings_line

    lines = []
    for label, method in methods.items():
        name = method["method"] if isinstance(method, Mapping) else method.name
        hyperparameters = method["hyperparameters"] if isinstance(method, Mapping) else method.hyperparameters
        named = f"`{label}`" + (f" ({name})" if name != label else "")
        lines.append(f"- {named}: {settings_line(name, hyperparameters)}")
    return "Settings:\n\n" + "\n".join(lines) + "\n" if lines else ""


def save_figure(figure, path, dpi: int = 100):
    """Save a matplotlib ``figure`` as PNG at ``path`` atomically (a reader never sees half a file), and close it."""
    import io

    import matplotlib.pyplot as plt

    from ..embedding_cache import write_atomic

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    write_atomic(Path(path), buffer.getvalue())
    return path
