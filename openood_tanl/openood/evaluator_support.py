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
from ..core.errors import UserError, UserTypeError
from ..evaluation.comparison import replay_methods
from ..evaluation.data import FeatureBenchmark, FeatureSet
from ..evaluation.protocols import StreamSettings, check_protocol, check_seeds
from ..evaluation.replay import replay as replay_engine
from ..methods import configure

__all__ = ["OPENOOD_COLUMNS", "TABLE_COLUMNS", "BENCHMARK_CLASSES", "check_network_fits", "evaluator_settings",
           "encode_loader", "openood_table", "replay", "search_grid", "search_sweep",
           "sweep_combinations", "require_engine_postprocessor", "print_table", "concat_id_sets", "RULE"]

#: OpenOOD's table columns, in its order.
OPENOOD_COLUMNS = ("FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC")

#: Our table columns: OpenOOD's, then the ID-positive FPR@95.
TABLE_COLUMNS = OPENOOD_COLUMNS + ("FPR@95(ID+)",)

RULE = "\u2500" * 70


#: OpenOOD's ID benchmarks -> (class count, the built-in class-name sets that name them).
BENCHMARK_CLASSES = {"cifar10": (10, ("cifar10",)), "cifar100": (100, ("cifar100",)),
                     "imagenet200": (200, ("imagenet200",)), "imagenet": (1000, ("imagenet", "imagenet-disambiguated"))}


def _known_set(names) -> str | None:
    """The built-in class-name set ``names`` equals, if any."""
    from ..classnames import class_names

    for count, sets in BENCHMARK_CLASSES.values():
        for name in sets if count == len(names) else ():
            if list(names) == class_names(name):
                return name
    return None


def check_network_fits(net, benchmark: str | None, label_count: int | None = None) -> None:
    """Refuse, with a ValueError naming the fix, a network whose ID classes cannot be ``benchmark``'s (OpenOOD's
    name, e.g. ``cifar10``): another class count than OpenOOD's for its own benchmarks, or, for any other,
    fewer classes than the ID labels need (``label_count`` = 1 + the largest label). The built-in class-name sets
    differ in size, so a network named for another of OpenOOD's benchmarks always fails here."""
    count = len(net.id_text_features)
    expected = BENCHMARK_CLASSES.get(benchmark, (None,))[0]
    if expected is not None and count != expected:
        problem = f"benchmark '{benchmark}' has {expected}"
    elif expected is None and label_count is not None and label_count > count:
        problem = f"the ID labels of '{benchmark}' go up to {label_count - 1}"
    else:
        return
    names = getattr(net, "class_names", None)
    known = _known_set(names) if names else None
    described = f" (the '{known}' class names)" if known else ""
    fix = benchmark if benchmark in BENCHMARK_CLASSES else "<a file of its class names, in label order>"
    raise UserError(f"the network scores {count} ID classes{described} but {problem}: build it with "
                    f"create_network(..., id_classes='{fix}') (in a pipeline config: --network.id_classes {fix}); "
                    "its ID accuracy and every score would be wrong")


def _as_list(value) -> list | None:
    """A YAML list, or a string of space/comma-separated items (OpenOOD's command line keeps a key's YAML type)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, str):
        return [item for item in value.strip().strip("[]").replace(",", " ").split() if item]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def evaluator_settings(section: Mapping) -> dict:
    """The test-time keys of an ``evaluator:`` section (configs/evaluators/test_time.yml), checked: ``protocol``
    (default mixed), ``seeds`` (default [0]), ``order`` (None) and ``stream_batch_size`` (None = the loader's)."""
    unknown = set(section) - {"name", "ood_scheme", "protocol", "seeds", "order", "stream_batch_size"}
    if unknown:
        raise UserError(f"unknown evaluator key(s) {sorted(unknown)}; the test_time evaluator reads name, "
                        "ood_scheme, protocol, seeds, order, stream_batch_size (configs/evaluators/test_time.yml)")
    seeds = _as_list(section.get("seeds"))
    try:
        seeds = None if seeds is None else [int(seed) for seed in seeds]
    except ValueError:
        raise UserError(f"evaluator.seeds must be whole numbers, e.g. '0 1 2'; got {section.get('seeds')!r}") \
            from None
    batch = section.get("stream_batch_size")
    return {"protocol": check_protocol(section.get("protocol") or "mixed"),
            "seeds": check_seeds([0] if seeds is None else seeds), "order": _as_list(section.get("order")),
            "stream_batch_size": int(batch) if batch not in (None, "", 0, "0", "none", "None") else None}


def require_engine_postprocessor(postprocessor):
    """Return ``postprocessor`` if the test-time protocol can replay it (one of openood_tanl's: it has
    ``engine_for``), else raise a TypeError."""
    if not callable(getattr(postprocessor, "engine_for", None)):
        raise UserTypeError(
            f"the test-time protocol needs an openood_tanl postprocessor (an EnginePostprocessor such as "
            f"TANLPostprocessor; names 'tanl', 'mcm', 'neglabel', 'adaneg'), got {type(postprocessor).__name__}: "
            "it replays cached embeddings through the postprocessor's stateful engine. Evaluate other "
            "postprocessors with OpenOOD's own Evaluator (or evaluator.name: ood in main.py).")
    return postprocessor


@torch.no_grad()
def encode_loader(net, loader, name: str, *, ood: bool = False, progress: bool = True) -> FeatureSet:
    """Embed every image of an OpenOOD loader (batches of ``{'data', 'label'}``) once.

    Runs ``net(x, return_feat=True)`` on ``net``'s device (a tuple output counts by its first element, as in the
    official fork's networks). Features stay on that device; labels go to the CPU, all -1 when ``ood``. Rows are
    in the order of the samples' dataset index (OpenOOD's batches carry it), whatever order the loader yields
    them in, so a stream depends on the protocol's seeds alone; a shuffling loader without indices is refused.
    """
    device = network_device(net)
    features, labels, indices = [], [], []
    for batch in tqdm(loader, disable=None if progress else True, desc=f"Encoding {name}"):
        output = net(batch["data"].to(device, non_blocking=True), return_feat=True)
        if isinstance(output, (tuple, list)):
            output = output[0]
        features.append(output.detach())
        labels.append(torch.as_tensor(batch["label"]).long().cpu())
        if "index" in batch:
            indices.append(torch.as_tensor(batch["index"]).long().cpu())
    if not features:
        raise UserError(f"the loader of '{name}' yields no batch")
    features, labels = torch.cat(features), torch.cat(labels)
    if indices and sum(map(len, indices)) == len(labels):  # every batch carried its indices
        order = torch.argsort(torch.cat(indices))
        features, labels = features[order.to(features.device)], labels[order]
    elif isinstance(getattr(loader, "sampler", None), torch.utils.data.RandomSampler):
        raise UserError(f"the loader of '{name}' shuffles and its batches carry no 'index': the test-time stream "
                        "would depend on the loader's unseeded order. Pass shuffle=False (the protocol shuffles, "
                        "seeded) or a dataset whose samples carry their 'index', as OpenOOD's do")
    if ood:
        labels = torch.full_like(labels, -1)
    return FeatureSet(name, features, labels)


def openood_table(summary: pd.DataFrame) -> pd.DataFrame:
    """``evaluate``'s summary in OpenOOD's layout: no ``group`` column, ``TABLE_COLUMNS`` then any ``_std``."""
    columns = list(TABLE_COLUMNS) + [f"{c}_std" for c in TABLE_COLUMNS if f"{c}_std" in summary.columns]
    table = summary[columns].astype(float).copy()
    table.index = list(summary.index)
    return table


def _settings(protocol: str, batch_size: int, order: Sequence[str] | None = None) -> StreamSettings:
    return StreamSettings.from_keywords(check_protocol(protocol), int(batch_size), order)


def replay(postprocessor, net, benchmark: FeatureBenchmark, *, protocol: str = "mixed",
           seeds: Iterable[int] = (0,), order: Sequence[str] | None = None,
           batch_size: int = 256) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``evaluation.replay.replay`` of the postprocessor's engine for ``net``'s text bank; returns (summary,
    per_seed). The postprocessor is left reset: no stream's state outlives the run."""
    postprocessor = require_engine_postprocessor(postprocessor)
    bank = TextBank.of(net)
    try:
        return replay_engine(functools.partial(postprocessor.engine_for, bank), benchmark,
                             _settings(protocol, batch_size, order), seeds=check_seeds(seeds)).tables[None]
    finally:
        postprocessor.reset()


def sweep_combinations(args_dict: Mapping[str, Sequence]) -> list[list]:
    """OpenOOD's sweep grid: one list per combination, values in key order, the last key varying slowest."""
    lists = [list(values) for values in args_dict.values()]
    if not lists:
        return []
    return [list(reversed(combo)) for combo in itertools.product(*reversed(lists))]


def search_grid(method: str, args: Mapping, grid: Mapping[str, Sequence], bank, benchmark: FeatureBenchmark,
                settings: StreamSettings = StreamSettings(), *, seeds: Iterable[int] = (0,),
                lockstep: bool = True) -> list[tuple[list, float]]:
    """[(combination, AUROC)] of every combination of ``grid`` (hyperparameter -> values; OpenOOD's order,
    ``sweep_combinations``) of ``method`` configured with ``args``: AUROC (percent) is the mean over the
    benchmark's OOD sets and the seeds; all combinations in one lockstep replay (``replay_methods``; the tables of
    one replay each)."""
    combos = sweep_combinations(grid)
    points = {index: configure(method, args, **dict(zip(grid, combo))) for index, combo in enumerate(combos)}
    tables = replay_methods(points, bank, benchmark, settings, seeds=seeds, lockstep=lockstep)
    names = [ood_set.name for _, ood_set in benchmark.ood_sets()]
    return [(combo, float(tables[index][0].loc[names, "AUROC"].mean())) for index, combo in enumerate(combos)]


def search_sweep(postprocessor, net, benchmark: FeatureBenchmark, *, protocol: str = "mixed",
                 seeds: Iterable[int] = (0,), batch_size: int = 256) -> tuple[list, float, list[tuple[list, float]]]:
    """OpenOOD's APS search under a test-time protocol: the sweep combination with the best mean AUROC.

    Every combination of ``postprocessor.args_dict`` is replayed on ``benchmark`` (usually ID val vs OOD val), all
    of them in one lockstep replay (``search_grid``). Ties go to the first combination in OpenOOD's order (as its
    evaluation API's search; its ``main.py`` evaluator keeps the last) and are reported. Leaves the postprocessor
    set to the best. Returns (best combination, its AUROC, [(combination, AUROC), ...]).
    """
    postprocessor = require_engine_postprocessor(postprocessor)
    if not sweep_combinations(postprocessor.args_dict):
        print("No postprocessor_sweep to search: keeping the configured hyperparameters", flush=True)
        return postprocessor.get_hyperparam(), math.nan, []
    grid = {postprocessor._swept_arg(key): values for key, values in postprocessor.args_dict.items()}
    results = search_grid(postprocessor.name, postprocessor.args, grid, TextBank.of(net), benchmark,
                          _settings(protocol, batch_size), seeds=check_seeds(seeds))
    for combo, auroc in results:
        print(f"Hyperparam: {combo}, auroc: {auroc / 100}", flush=True)
    best_auroc = max(auroc for _, auroc in results)
    tied = [combo for combo, auroc in results if auroc == best_auroc]
    if len(tied) > 1:
        print(f"{len(tied)} combinations tie at the best AUROC {best_auroc / 100}: {tied}; keeping the first",
              flush=True)
    postprocessor.set_hyperparam(tied[0])
    print(f"Final hyperparam: {postprocessor.get_hyperparam()}", flush=True)
    return tied[0], best_auroc, results


def print_table(table: pd.DataFrame) -> None:
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                           "display.float_format", "{:,.2f}".format):
        print(table, flush=True)


def concat_id_sets(name: str, parts: Sequence[FeatureSet]) -> FeatureSet:
    if len(parts) == 1:
        return parts[0]
    return FeatureSet(name, torch.cat([part.features for part in parts]), torch.cat([part.labels for part in parts]))


