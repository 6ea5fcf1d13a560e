"""The paper's setting and its published numbers, and the table that sets a run against them.

``openood-tanl reproduce`` runs TANL (paper preset) and the baselines with ViT-B/16 (OpenAI weights) under the
mixed protocol with 3 seeds, then ``compare_with_paper`` lists, per method and dataset, the paper's FPR@95 and
AUROC, ours and the difference. Each FPR@95 is compared in the convention its paper printed it in: the TANL paper
prints the MCM and NegLabel Four-OOD rows in the ID-positive convention (``FPR@95(ID+)``) and its own rows (and
AdaNeg's, from the same code base) in OpenOOD's (``FPR@95``, OOD positive); CSP's Four-OOD mean (17.51 / 95.76,
from NegLabel's code base) is ID-positive; the OpenOOD v1.5 rows are all OpenOOD's. ``reproduce --methods ... csp``
needs ``--corpus`` at NegLabel's txtfiles/ (CSP's corpus is its lexicographer files).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from ..core.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PAPER_SETTING", "PAPER_RESULTS", "OFFICIAL_IMAGENET_CORPUS", "REPRODUCIBLE_BENCHMARKS",
           "compare_with_paper", "setting_differences"]

#: What the paper ran: backbone, weights, precision (the official code's float16 model: ``official-fp16``), image
#: transform, methods (TANL with its paper preset), protocol, seeds, batch size.
PAPER_SETTING = {"model": "ViT-B-16", "pretrained": "openai", "precision": "official-fp16", "transform": "official",
                 "templates": "official",
                 "methods": ("tanl", "mcm", "neglabel", "adaneg"), "protocol": "mixed", "seeds": (0, 1, 2),
                 "batch_size": 256}

#: The official ImageNet-1k corpus: NegLabel's txtfiles/ read with the official rules for the official class names
#: (``load_corpus(<NegLabel>/txtfiles, class_names('imagenet'))``): its size and our SHA-256 of it.
OFFICIAL_IMAGENET_CORPUS = {"words": 69554, "nouns": 58101, "adjectives": 11453,
                            "sha256": "a5fb103a0af377904e87ca7638b3110a22cba5d7e551e40131c5775a25c5b52d"}

#: benchmark -> method -> {"convention": FPR@95 column, "rows": {dataset: (FPR@95, AUROC)}, "acc": ID ACC} (%).
#: Four-OOD's mean over its four sets is our ``farood`` row; OpenOOD v1.5's near/far means are ``nearood``/``farood``.
PAPER_RESULTS: dict[str, dict[str, dict]] = {
    "four-ood": {
        "tanl": {"convention": "FPR@95", "rows": {
            "iNaturalist": (0.42, 99.84), "SUN": (3.53, 99.07), "Places": (21.90, 95.87), "Textures": (13.38, 97.11),
            "farood": (9.81, 97.97)}},
        "mcm": {"convention": "FPR@95(ID+)", "rows": {"farood": (43.93, 90.82)}},
        "neglabel": {"convention": "FPR@95(ID+)", "rows": {"farood": (25.40, 94.21)}},
        "adaneg": {"convention": "FPR@95", "rows": {"farood": (18.92, 96.66)}},
        # CSP's Four-OOD mean as the TANL paper's Table 1 prints it; ID-positive, as CSP's own evaluation
        # (mmcls/utils/ood_evaluate.py: ID labelled 1, FPR at 95% ID recall). The per-dataset rows are left out: we
        # could not read them from the CSP paper here, and do not guess them.
        "csp": {"convention": "FPR@95(ID+)", "rows": {"farood": (17.51, 95.76)}},
    },
    "imagenet": {
        "tanl": {"convention": "FPR@95", "acc": 66.82, "rows": {
            "ssb_hard": (62.51, 83.96), "ninco": (57.61, 85.10), "nearood": (60.06, 84.53),
            "inaturalist": (0.47, 99.83), "textures": (11.22, 97.53), "openimage_o": (39.95, 91.92),
            "farood": (17.21, 96.43)}},
        "mcm": {"convention": "FPR@95", "rows": {"nearood": (79.02, 60.11), "farood": (68.54, 84.77)}},
        "neglabel": {"convention": "FPR@95", "rows": {"nearood": (69.45, 75.18), "farood": (23.73, 94.85)}},
        "adaneg": {"convention": "FPR@95", "rows": {"nearood": (67.51, 76.70), "farood": (17.31, 96.43)}},
    },
}
REPRODUCIBLE_BENCHMARKS = tuple(PAPER_RESULTS)

#: Spread a third party saw running the official code on Four-OOD (mean FPR@95): 9.89 +- 0.13 with the paper
#: preset, 10.75 with the authors' script.
EXPECTED_SPREAD = "a third party running the official code got Four-OOD mean FPR@95 9.89 +- 0.13 (paper preset)"


def _cell(value: float) -> float:
    return float("nan") if value is None else float(value)


def compare_with_paper(results: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """Paper vs ours, one row per (method, dataset) of ``results`` (``compare_methods``' long table).

    Columns: ``method``, ``dataset``, ``convention`` (the FPR@95 column the paper's number is in), ``paper FPR@95``,
    ``ours FPR@95``, ``diff FPR@95`` (ours - paper), the same three for ``AUROC`` and, with several seeds,
    ``ours ... std``. Four-OOD's ``farood`` row is called ``mean``. An ``ID ACC`` row is added where the paper gives
    the accuracy. Paper cells are empty where the paper has no number.
    """
    import pandas as pd

    from .tables import is_group_mean

    if benchmark not in PAPER_RESULTS:
        raise UserError(f"the paper has no results for benchmark '{benchmark}'; it has {list(PAPER_RESULTS)}")
    paper = PAPER_RESULTS[benchmark]
    rows = []
    for method, part in results.groupby("method", sort=False):
        entry: Mapping = paper.get(method, {"convention": "FPR@95", "rows": {}})
        convention = entry["convention"]
        for _, row in part.iterrows():
            dataset = row["dataset"]
            paper_fpr, paper_auroc = entry["rows"].get(dataset, (None, None))
            out = {"method": method, "dataset": "mean" if benchmark == "four-ood" and dataset == "farood" else dataset,
                   "convention": convention, "paper FPR@95": _cell(paper_fpr), "ours FPR@95": row[convention],
                   "paper AUROC": _cell(paper_auroc), "ours AUROC": row["AUROC"]}
            for metric, column in ((convention, "FPR@95"), ("AUROC", "AUROC")):
                if f"{metric}_std" in row:
                    out[f"ours {column} std"] = row[f"{metric}_std"]
            rows.append(out)
        if "acc" in entry:  # the ID set is scored once per OOD set: the mean over those runs
            rows.append({"method": method, "dataset": "ID ACC", "convention": "ACC", "paper ACC": entry["acc"],
                         "ours ACC": part.loc[~is_group_mean(part), "ACC"].mean()})
    table = pd.DataFrame(rows)
    for metric in ("FPR@95", "AUROC", "ACC"):
        if f"ours {metric}" in table:
            table[f"diff {metric}"] = table[f"ours {metric}"] - table[f"paper {metric}"]
    order = ["method", "dataset", "convention"]
    for metric in ("FPR@95", "AUROC", "ACC"):
        order += [c for c in (f"paper {metric}", f"ours {metric}", f"ours {metric} std", f"diff {metric}")
                  if c in table]
    return table[order]


def setting_differences(setting: Mapping, corpus: Mapping | None = None) -> list[str]:
    """How a run's ``setting`` (model, pretrained, precision, transform, templates, protocol, seeds, batch_size) and its
    ``corpus`` provenance differ from the paper's (one note each); empty when they do not."""
    notes = []
    for key in ("model", "pretrained", "precision", "transform", "templates", "protocol", "batch_size"):
        if key in setting and setting[key] != PAPER_SETTING[key]:
            fine = {"pretrained": " (fine if it is a copy of the OpenAI weights)",
                    "precision": " (the authors' numbers come from their float16 run: --precision official-fp16)",
                    "transform": " (--transform official: short side to 256, bicubic, crop 224)"}.get(key, "")
            notes.append(f"{key} {setting[key]!r} (paper: {PAPER_SETTING[key]!r}){fine}")
    if "seeds" in setting and len(list(setting["seeds"])) != len(PAPER_SETTING["seeds"]):
        notes.append(f"{len(list(setting['seeds']))} seed(s) (paper setting: 3)")
    if corpus is not None and corpus.get("sha256") != OFFICIAL_IMAGENET_CORPUS["sha256"]:
        gap = corpus.get("words", 0) - OFFICIAL_IMAGENET_CORPUS["words"]
        notes.append(f"corpus {corpus.get('source')!r} ({corpus.get('words')} words, {gap:+d} vs the official "
                     f"{OFFICIAL_IMAGENET_CORPUS['words']}; point --corpus at NegLabel's txtfiles/ for the official "
                     "word list)")
    return notes
