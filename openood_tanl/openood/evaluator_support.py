"""What the test-time evaluators do that needs no OpenOOD: encode a loader once, replay a postprocessor's engine under
a protocol, OpenOOD's table layout, OpenOOD's hyperparameter search under a protocol."""
from __future__ import annotations

import functools
import itertools
import math
from typing import Iterable, Mapping, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..bank import TextBank, network_device
from ..evaluation.data import FeatureBenchmark, FeatureSet
from ..evaluation.protocols import check_protocol, check_seeds
from ..evaluation.replay import evaluate

__all__ = ["OPENOOD_COLUMNS", "TABLE_COLUMNS", "encode_loader", "openood_table", "replay", "search_sweep",
           "sweep_combinations", "require_engine_postprocessor", "print_table", "concat_id_sets", "RULE"]

#: OpenOOD's table columns, in its order.
OPENOOD_COLUMNS = ("FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC")

#: Our table columns: OpenOOD's, then the ID-positive FPR@95.
TABLE_COLUMNS = OPENOOD_COLUMNS + ("FPR@95(ID+)",)

RULE = "\u2500" * 70


def require_engine_postprocessor(postprocessor):
    """Return ``postprocessor`` if the test-time protocol can replay it (one of openood_tanl's: it has
    ``engine_for``), else raise a TypeError."""
    if not callable(getattr(postprocessor, "engine_for", None)):
        raise TypeError(
            f"the test-time protocol needs an openood_tanl postprocessor (an EnginePostprocessor such as "
            f"TANLPostprocessor; names 'tanl', 'mcm', 'neglabel', 'adaneg'), got {type(postprocessor).__name__}: "
            "it replays cached embeddings through the postprocessor's stateful engine. Evaluate other "
            "postprocessors with OpenOOD's own Evaluator (or evaluator.name: ood in main.py).")
    return postprocessor


@torch.no_grad()
def encode_loader(net, loader, name: str, *, ood: bool = False, progress: bool = True) -> FeatureSet:
    """Embed every image of an OpenOOD loader (batches of ``{'data', 'label'}``) once.

    Runs ``net(x, return_feat=True)`` on ``net``'s device (a tuple output counts by its first element, as in the
    official fork's networks). Features stay on that device; labels go to the CPU, all -1 when ``ood``.
    """
    device = network_device(net)
    features, labels = [], []
    for batch in tqdm(loader, disable=None if progress else True, desc=f"Encoding {name}"):
        output = net(batch["data"].to(device, non_blocking=True), return_feat=True)
        if isinstance(output, (tuple, list)):
            output = output[0]
        features.append(output.detach())
        labels.append(torch.as_tensor(batch["label"]).long().cpu())
    if not features:
        raise ValueError(f"the loader of '{name}' yields no batch")
    labels = torch.cat(labels)
    if ood:
        labels = torch.full_like(labels, -1)
    return FeatureSet(name, torch.cat(features), labels)


def openood_table(summary: pd.DataFrame) -> pd.DataFrame:
    """``evaluate``'s summary in OpenOOD's layout: no ``group`` column, ``TABLE_COLUMNS`` then any ``_std``."""
    columns = list(TABLE_COLUMNS) + [f"{c}_std" for c in TABLE_COLUMNS if f"{c}_std" in summary.columns]
    table = summary[columns].astype(float).copy()
    table.index = list(summary.index)
    return table


def replay(postprocessor, net, benchmark: FeatureBenchmark, *, protocol: str = "mixed",
           seeds: Iterable[int] = (0,), order: Sequence[str] | None = None,
           batch_size: int = 256) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``evaluate`` with the postprocessor's engine for ``net``'s text bank; returns (summary, per_seed)."""
    postprocessor = require_engine_postprocessor(postprocessor)
    bank = TextBank.of(net)
    return evaluate(functools.partial(postprocessor.engine_for, bank), benchmark, check_protocol(protocol),
                    seeds=check_seeds(seeds), batch_size=int(batch_size), order=order)


def sweep_combinations(args_dict: Mapping[str, Sequence]) -> list[list]:
    """OpenOOD's sweep grid: one list per combination, values in key order, the last key varying slowest."""
    lists = [list(values) for values in args_dict.values()]
    if not lists:
        return []
    return [list(reversed(combo)) for combo in itertools.product(*reversed(lists))]


def search_sweep(postprocessor, net, benchmark: FeatureBenchmark, *, protocol: str = "mixed",
                 seeds: Iterable[int] = (0,), batch_size: int = 256) -> tuple[list, float, list[tuple[list, float]]]:
    """OpenOOD's APS search under a test-time protocol: the sweep combination with the best mean AUROC.

    Every combination of ``postprocessor.args_dict`` is replayed on ``benchmark`` (usually ID val vs OOD val);
    AUROC (percent) is the mean over the benchmark's OOD sets and the seeds; the first best wins. Leaves the
    postprocessor set to it. Returns (best combination, its AUROC, [(combination, AUROC), ...]).
    """
    postprocessor = require_engine_postprocessor(postprocessor)
    combos = sweep_combinations(postprocessor.args_dict)
    if not combos:
        print("No postprocessor_sweep to search: keeping the configured hyperparameters", flush=True)
        return postprocessor.get_hyperparam(), math.nan, []
    names = [ood_set.name for _, ood_set in benchmark.ood_sets()]
    results = []
    for combo in combos:
        postprocessor.set_hyperparam(combo)
        summary, _ = replay(postprocessor, net, benchmark, protocol=protocol, seeds=seeds, batch_size=batch_size)
        auroc = float(summary.loc[names, "AUROC"].mean())
        print(f"Hyperparam: {combo}, auroc: {auroc / 100}", flush=True)
        results.append((combo, auroc))
    best = max(range(len(results)), key=lambda i: (results[i][1], -i))
    postprocessor.set_hyperparam(results[best][0])
    print(f"Final hyperparam: {postprocessor.get_hyperparam()}", flush=True)
    return results[best][0], results[best][1], results


def print_table(table: pd.DataFrame) -> None:
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                           "display.float_format", "{:,.2f}".format):
        print(table, flush=True)


def concat_id_sets(name: str, parts: Sequence[FeatureSet]) -> FeatureSet:
    if len(parts) == 1:
        return parts[0]
    return FeatureSet(name, torch.cat([part.features for part in parts]), torch.cat([part.labels for part in parts]))


