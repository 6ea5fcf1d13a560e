"""OpenOOD evaluators that run the paper's test-time protocol.

OpenOOD scores the whole ID test set first and then each OOD set on its own, with one postprocessor that is never
reset, so a test-time method never sees a mixed stream and carries its state from one OOD set to the next. The
evaluators here keep OpenOOD's data handling (loaders, preprocessing, data tree, configs) and its output (the
DataFrame of ``Evaluator.eval_ood``; ``ood.csv`` and the console lines of the ``main.py`` pipeline) but:

1. encode every image once, with ``net(x, return_feat=True)`` on the network's own device (no ``.cuda()``), the
   ID test set and each near/far OOD set (and the covariate-shifted ID sets when ``fsood``);
2. replay the cached embeddings through the postprocessor's engine with
   :func:`openood_tanl.evaluation.replay.replay` under one protocol (``mixed``, the paper's, by default: a reset and
   one seeded shuffle of the ID test set with that OOD set, per OOD set) and one or more seeds.

Behaviour choices:

- Only the engine-backed postprocessors of this package (``openood_tanl.openood.postprocessors``: ``tanl``,
  ``tanl_official``, ``mcm``, ``neglabel``, ``adaneg``) can be replayed; any other postprocessor raises a
  ``TypeError`` (use OpenOOD's own ``Evaluator`` / ``evaluator.name: ood`` for those). There is no silent fallback,
  because a table that looks test-time but is not would be misleading.
- Tables: OpenOOD's index (each near set, ``nearood``, each far set, ``farood``) and columns ``FPR@95, AUROC,
  AUPR_IN, AUPR_OUT, ACC`` (percent), then ``FPR@95(ID+)`` (ID positive: the share of OOD kept at 95% ID recall,
  the convention of the MCM/NegLabel/TANL papers), then, with several seeds, ``<column>_std`` (sample standard
  deviation over seeds) for each of those six. Values are means over seeds.
- ``ACC`` is the postprocessor's ID accuracy inside the replayed streams (what OpenOOD's ``main.py`` evaluator and
  the official TANL evaluator report), not the ``net(x).argmax`` accuracy that ``Evaluator.eval_ood`` writes over
  it; that classifier accuracy remains available from ``TestTimeEvaluator.eval_acc('id')``.
- The engine sees the stream in batches of ``stream_batch_size`` embeddings, by default the loader's batch size
  (the official evaluator streams at the ID loader's batch size).
- OpenOOD's automatic parameter search (``APS_mode``) runs under the same protocol and seeds on the validation
  split (ID val + OOD val), keeping the combination with the highest mean AUROC (first one on ties).
- Per-sample scores are not stored (``Evaluator.scores`` stays empty, ``recorder.save_scores`` writes nothing):
  under a test-time protocol a sample's score depends on the stream it was in.

Needs OpenOOD (this module imports it); the OpenOOD-free parts are in ``evaluator_support``.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
import torch

from ..core.errors import MissingDependencyError

try:
    from openood.evaluation_api import Evaluator
    from openood.evaluators.ood_evaluator import OODEvaluator
except ImportError as error:  # OpenOOD is not on PyPI
    raise MissingDependencyError(f"openood_tanl's OpenOOD evaluators need OpenOOD ({error}); it is not on PyPI: "
                                 "pip install git+https://github.com/Jingkang50/OpenOOD") from error
from tqdm.auto import tqdm

from ..bank import TextBank, check_network, network_device
from ..evaluation.data import FeatureBenchmark, FeatureSet
from ..evaluation.protocols import check_protocol, check_seeds
from ..evaluation.streams import score_stream
from .evaluator_support import (
    OPENOOD_COLUMNS,
    RULE,
    check_network_fits,
    concat_id_sets,
    encode_loader,
    evaluator_settings,
    openood_table,
    print_table,
    replay,
    require_engine_postprocessor,
    search_sweep,
)
from .postprocessors import EnginePostprocessor

__all__ = ["TestTimeEvaluator", "TestTimeOODEvaluator"]

logger = logging.getLogger(__name__)


class TestTimeEvaluator(Evaluator):
    """``openood.evaluation_api.Evaluator`` that scores under a test-time protocol.

    Same constructor as OpenOOD's ``Evaluator`` plus:

    Args:
        protocol: ``'mixed'`` (the paper's: a reset and one seeded shuffle of ID test + OOD set, per OOD set),
            ``'id-first'``, ``'ood-first'`` or ``'temporal'`` (see ``openood_tanl.evaluation.protocols``).
        seeds: the stream shuffles to average over; several seeds add ``<column>_std`` columns.
        order: OOD dataset names in arrival order, for ``'temporal'`` (default: near sets, then far sets).
        stream_batch_size: embeddings per engine step (default: ``batch_size``).

    ``eval_ood`` encodes each image once (cached in ``self.features`` across calls, protocols and sweeps) and
    replays the embeddings with ``openood_tanl.evaluation.replay.replay``; the table goes to ``self.metrics['ood']``
    (or ``'fsood'``) and the per-seed long table to ``self.per_seed``. Changing ``protocol``, ``seeds``,
    ``order``, ``stream_batch_size`` or the hyperparameters and calling ``eval_ood`` again re-scores from
    the cache without re-encoding. The postprocessor must be one of openood_tanl's (else TypeError).
    """

    def __init__(self, net, id_name: str, data_root: str = "./data", config_root: str = "./configs",
                 preprocessor=None, postprocessor_name: str | None = None, postprocessor=None,
                 batch_size: int = 200, shuffle: bool = False, num_workers: int = 4, *,
                 protocol: str = "mixed", seeds: Iterable[int] = (0,), order: Sequence[str] | None = None,
                 stream_batch_size: int | None = None) -> None:
        check_network(net)
        check_network_fits(net, id_name)  # before any data is read
        self.protocol = check_protocol(protocol)
        self.seeds = check_seeds(seeds)
        self.order = None if order is None else list(order)
        self.stream_batch_size = int(stream_batch_size or batch_size)
        if postprocessor is not None:
            require_engine_postprocessor(postprocessor).reset()  # every stream here starts from a reset anyway
        self.features: dict[tuple[str, str], FeatureSet] = {}
        self.benchmarks: dict[str, FeatureBenchmark | None] = {"ood": None, "fsood": None}
        self.per_seed: dict[str, pd.DataFrame | None] = {"ood": None, "fsood": None}
        self._metrics_key: dict[str, tuple] = {}
        # OpenOOD's __init__ may call self.hyperparam_search (APS_mode): everything above must exist first.
        super().__init__(net, id_name, data_root=data_root, config_root=config_root, preprocessor=preprocessor,
                         postprocessor_name=postprocessor_name, postprocessor=postprocessor,
                         batch_size=batch_size, shuffle=shuffle, num_workers=num_workers)
        require_engine_postprocessor(self.postprocessor)

    # ------------------------------------------------------------ encoding
    def _encoded(self, key: tuple[str, str], loader, name: str, ood: bool, progress: bool) -> FeatureSet:
        if key not in self.features:
            print(f"Performing inference on {name} dataset...", flush=True)
            self.features[key] = encode_loader(self.net, loader, name, ood=ood, progress=progress)
        return self.features[key]

    def benchmark(self, fsood: bool = False, progress: bool = True) -> FeatureBenchmark:
        """The cached embeddings as a ``FeatureBenchmark`` (ID test [+ CSID] vs the near and far sets)."""
        check_network(self.net)
        self.net.eval()
        loaders = self.dataloader_dict
        id_set = self._encoded(("id", "test"), loaders["id"]["test"], self.id_name, False, progress)
        if fsood:
            parts = [id_set] + [self._encoded(("csid", name), loader, name, False, progress)
                                for name, loader in loaders["csid"].items()]
            id_set = concat_id_sets(f"{self.id_name}+csid", parts)
        groups = {split: [self._encoded((split, name), loader, name, True, progress)
                          for name, loader in loaders["ood"][split].items()] for split in ("near", "far")}
        return FeatureBenchmark(self.id_name, id_set, groups)

    # ------------------------------------------------------------ OpenOOD API
    def eval_ood(self, fsood: bool = False, progress: bool = True) -> pd.DataFrame:
        task = "fsood" if fsood else "ood"
        postprocessor = require_engine_postprocessor(self.postprocessor)
        key = (self.protocol, tuple(self.seeds), None if self.order is None else tuple(self.order),
               self.stream_batch_size, id(postprocessor), repr(sorted(postprocessor.args.items())))
        if self.metrics[task] is None or self._metrics_key.get(task) != key:
            benchmark = self.benchmark(fsood, progress)
            print(f"Replaying the {self.protocol} protocol (seeds {list(self.seeds)}, "
                  f"{self.stream_batch_size} per step)...", flush=True)
            summary, per_seed = replay(postprocessor, self.net, benchmark, protocol=self.protocol,
                                       seeds=self.seeds, order=self.order, batch_size=self.stream_batch_size)
            self.benchmarks[task] = benchmark
            self.per_seed[task] = per_seed
            self.metrics[task] = openood_table(summary)
            self._metrics_key[task] = key
        else:
            print("Evaluation has already been done!")
        print_table(self.metrics[task])
        return self.metrics[task]

    def hyperparam_search(self):
        """OpenOOD's APS search (ID val vs OOD val) under this evaluator's protocol and seeds."""
        postprocessor = require_engine_postprocessor(self.postprocessor)
        print(f"Starting automatic parameter search ({self.protocol} protocol, seeds {list(self.seeds)})...")
        check_network(self.net)
        self.net.eval()
        id_val = self._encoded(("id", "val"), self.dataloader_dict["id"]["val"], f"{self.id_name}_val", False,
                               True)
        ood_val = self._encoded(("ood", "val"), self.dataloader_dict["ood"]["val"], "ood_val", True, True)
        benchmark = FeatureBenchmark(f"{self.id_name}_val", id_val, {"val": [ood_val]})
        search_sweep(postprocessor, self.net, benchmark, protocol=self.protocol, seeds=self.seeds,
                     batch_size=self.stream_batch_size)
        postprocessor.hyperparam_search_done = True

    @torch.no_grad()
    def _classifier_inference(self, data_loader, msg: str = "Acc Eval", progress: bool = True):
        """OpenOOD's ``net(x).argmax`` accuracy pass, on the network's device instead of ``.cuda()``."""
        self.net.eval()
        device = network_device(self.net)
        preds, labels = [], []
        for batch in tqdm(data_loader, desc=msg, disable=None if progress else True):
            logits = self.net(batch["data"].to(device, non_blocking=True))
            preds.append(logits.argmax(1).cpu())
            labels.append(torch.as_tensor(batch["label"]).cpu())
        return torch.cat(preds), torch.cat(labels)

class TestTimeOODEvaluator(OODEvaluator):
    """``evaluator.name: test_time`` for OpenOOD's ``main.py`` (``test_ood`` pipeline).

    Reads ``evaluator.protocol`` (default ``mixed``), ``evaluator.seeds`` (default ``[0]``),
    ``evaluator.order`` (``temporal`` arrival order) and ``evaluator.stream_batch_size`` (default: the ID test
    loader's batch size). ``eval_ood`` encodes the ID test set and every ``nearood``/``farood`` set once,
    replays the protocol and then writes ``ood.csv`` and prints exactly as OpenOOD's ``OODEvaluator`` does
    (per dataset, then the split mean; mean over seeds), plus the ``FPR@95(ID+)`` line per row. With
    ``recorder.save_csv`` it also writes ``ood_test_time.csv`` (the full table: ``FPR@95(ID+)`` and, with
    several seeds, ``_std`` columns) and ``ood_test_time_per_seed.csv``. The postprocessor must be one of
    openood_tanl's (else TypeError).
    """

    def __init__(self, config):
        super().__init__(config)
        settings = evaluator_settings(config.get("evaluator") or {})
        self.protocol, self.seeds, self.order = settings["protocol"], settings["seeds"], settings["order"]
        self.stream_batch_size = settings["stream_batch_size"]
        self.summary: pd.DataFrame | None = None
        self.per_seed: pd.DataFrame | None = None
        self._cache: dict[int, tuple[Any, FeatureSet]] = {}

    # ------------------------------------------------------------ encoding
    def _encode(self, net, loader, name: str, ood: bool) -> FeatureSet:
        cached = self._cache.get(id(loader))
        if cached is None or cached[0] is not loader:  # keep the loader, so its id cannot be reused
            cached = (loader, encode_loader(net, loader, name, ood=ood))
            self._cache[id(loader)] = cached
        return cached[1]

    def _id_set(self, net, loader, csid_loaders: Mapping | None) -> FeatureSet:
        name = self.config.dataset.name
        parts = [self._encode(net, loader, name, False)]
        for csid_name, csid_loader in (csid_loaders or {}).items():
            print(f"Performing inference on {csid_name} dataset...", flush=True)
            parts.append(self._encode(net, csid_loader, csid_name, False))
        return concat_id_sets(f"{name}+csid", parts)

    def _batch_size(self, loader) -> int:
        return int(self.stream_batch_size or getattr(loader, "batch_size", None) or 256)

    @staticmethod
    def _prepare(net, postprocessor) -> EnginePostprocessor:
        postprocessor = require_engine_postprocessor(postprocessor)
        check_network(net)
        net.eval()
        return postprocessor

    # ------------------------------------------------------------ OpenOOD API
    @torch.no_grad()
    def eval_acc(self, net, data_loader, postprocessor=None, epoch_idx: int = -1, fsood: bool = False,
                 csid_data_loaders=None):
        """The postprocessor's ID accuracy on a fresh (reset) stream of the ID test set [+ CSID], in loader
        order, from the same cached embeddings that ``eval_ood`` replays."""
        postprocessor = self._prepare(net, postprocessor)
        id_set = self._id_set(net, data_loader, csid_data_loaders if fsood else None)
        engine = postprocessor.engine_for(TextBank.of(net))
        engine.reset()
        pred, conf = score_stream(engine, id_set.features, self._batch_size(data_loader))
        engine.reset()  # no stream's state outlives the run
        self.id_pred, self.id_conf, self.id_gt = pred.numpy(), conf.numpy(), id_set.labels.numpy()
        return {"acc": float((pred == id_set.labels).float().mean()), "epoch_idx": epoch_idx}

    def eval_ood(self, net, id_data_loaders, ood_data_loaders, postprocessor, fsood: bool = False):
        postprocessor = self._prepare(net, postprocessor)
        assert "test" in id_data_loaders, "id_data_loaders should have the key: test!"
        dataset_name = self.config.dataset.name
        if self.config.postprocessor.APS_mode:
            assert "val" in id_data_loaders
            assert "val" in ood_data_loaders
            self.hyperparam_search(net, id_data_loaders["val"], ood_data_loaders["val"], postprocessor)

        print(f"Performing inference on {dataset_name} dataset...", flush=True)
        id_set = self._id_set(net, id_data_loaders["test"], ood_data_loaders.get("csid") if fsood else None)
        groups = {}
        for split in ("nearood", "farood"):
            print(RULE, flush=True)
            print(f"Processing {split}...", flush=True)
            groups[split] = []
            for name, loader in ood_data_loaders[split].items():
                print(f"Performing inference on {name} dataset...", flush=True)
                groups[split].append(self._encode(net, loader, name, True))
        batch_size = self._batch_size(id_data_loaders["test"])
        print(RULE, flush=True)
        print(f"Replaying the {self.protocol} protocol (seeds {list(self.seeds)}, {batch_size} per step)...",
              flush=True)
        summary, per_seed = replay(postprocessor, net, FeatureBenchmark(dataset_name, id_set, groups),
                                   protocol=self.protocol, seeds=self.seeds, order=self.order,
                                   batch_size=batch_size)
        table = openood_table(summary)
        self.summary, self.per_seed = table, per_seed
        if self.config.recorder.save_scores:
            logger.info("recorder.save_scores: per-sample scores are not saved under a test-time protocol (a "
                        "sample's score depends on its stream)")

        for split, sets in groups.items():
            print(RULE, flush=True)
            print(f"Processing {split}...", flush=True)
            for ood_set in sets:
                print(f"Computing metrics on {ood_set.name} dataset...")
                self._report(table.loc[ood_set.name], ood_set.name)
            print("Computing mean metrics...", flush=True)
            self._report(table.loc[split], split)
        if self.config.recorder.save_csv:
            table.to_csv(os.path.join(self.config.output_dir, "ood_test_time.csv"), index_label="dataset",
                         float_format="%.4f")
            per_seed.assign(protocol=self.protocol).to_csv(
                os.path.join(self.config.output_dir, "ood_test_time_per_seed.csv"), index=False,
                float_format="%.4f")
        print_table(table)

    def _report(self, row: pd.Series, name: str) -> None:
        """One row to ``ood.csv`` and the console through OpenOOD's own ``_save_csv`` (fractions)."""
        spread = f" +- {row['FPR@95(ID+)_std']:.2f}" if "FPR@95(ID+)_std" in row else ""
        print(f"FPR@95(ID+): {row['FPR@95(ID+)']:.2f}{spread} [{self.protocol}, seeds {list(self.seeds)}]",
              flush=True)
        fractions = [float(row[column]) / 100 for column in OPENOOD_COLUMNS]
        if self.config.recorder.save_csv:
            self._save_csv(fractions, dataset_name=name)
        else:
            fpr, auroc, aupr_in, aupr_out, accuracy = fractions
            print("FPR@95: {:.2f}, AUROC: {:.2f}".format(100 * fpr, 100 * auroc), end=" ", flush=True)
            print("AUPR_IN: {:.2f}, AUPR_OUT: {:.2f}".format(100 * aupr_in, 100 * aupr_out), flush=True)
            print("ACC: {:.2f}".format(accuracy * 100), flush=True)
            print(RULE, flush=True)

    def _val_benchmark(self, net, id_loader, ood_loader) -> FeatureBenchmark:
        name = self.config.dataset.name
        id_val = self._encode(net, id_loader, f"{name}_val", False)
        ood_val = self._encode(net, ood_loader, "ood_val", True)
        return FeatureBenchmark(f"{name}_val", id_val, {"val": [ood_val]})

    def hyperparam_search(self, net, id_data_loader, ood_data_loader, postprocessor) -> float:
        """OpenOOD's APS search under this evaluator's protocol and seeds; returns the best AUROC (fraction)."""
        postprocessor = self._prepare(net, postprocessor)
        print(f"Starting automatic parameter search ({self.protocol} protocol, seeds {list(self.seeds)})...")
        benchmark = self._val_benchmark(net, id_data_loader, ood_data_loader)
        _, auroc, _ = search_sweep(postprocessor, net, benchmark, protocol=self.protocol, seeds=self.seeds,
                                   batch_size=self._batch_size(id_data_loader))
        return auroc / 100

    def eval_ood_val(self, net, id_data_loaders, ood_data_loaders, postprocessor):
        """Validation AUROC (percent) under the protocol (after the APS search when ``APS_mode``)."""
        postprocessor = self._prepare(net, postprocessor)
        assert "val" in id_data_loaders
        assert "val" in ood_data_loaders
        if self.config.postprocessor.APS_mode:
            return {"auroc": 100 * self.hyperparam_search(net, id_data_loaders["val"], ood_data_loaders["val"],
                                                          postprocessor)}
        benchmark = self._val_benchmark(net, id_data_loaders["val"], ood_data_loaders["val"])
        summary, _ = replay(postprocessor, net, benchmark, protocol=self.protocol, seeds=self.seeds,
                            batch_size=self._batch_size(id_data_loaders["val"]))
        return {"auroc": float(summary.loc["ood_val", "AUROC"])}
