"""OpenOOD's ``main.py`` pipeline with openood-tanl's names registered.

    python -m openood_tanl.openood.main --config <dataset.yml> <dataset_ood.yml> configs/networks/clip_tanl.yml \\
        <pipeline.yml> <preprocessor.yml> configs/postprocessors/tanl.yml [--key.sub value ...]

OpenOOD has no plugin discovery and its ``main.py`` is not part of its installed package: this entry point
registers our postprocessors, network and evaluator (``registration.apply('all')``), parses the configs with
OpenOOD's ``setup_config`` and runs OpenOOD's own pipeline. OpenOOD hard-codes ``.cuda()`` in places; on a
machine without CUDA those calls are made no-ops for the run (``cpu_only``, with a warning; restored after it) so
the pipeline runs on the CPU. After the run,
``<output_dir>/ood.run.json`` records what produced its CSVs (network and text bank, postprocessor and
hyperparameters, evaluator and protocol; see ``openood_tanl.provenance``).
"""
from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path

import torch

from ..log import show_messages
from ..provenance import method_record, run_record, write_run_record
from .registration import apply, built_by_pipeline


@contextlib.contextmanager
def cpu_only():
    """Within the block, on a machine without CUDA, OpenOOD's hard-coded ``.cuda()`` calls (``Tensor.cuda``,
    ``Module.cuda``) return what they are called on, so OpenOOD's code runs on the CPU; restored on exit. Does
    nothing where CUDA is available.

        with openood_tanl.openood.cpu_only():
            Evaluator(net, ...).eval_ood()      # OpenOOD's own Evaluator (its accuracy pass calls .cuda())
    """
    if torch.cuda.is_available():
        yield
        return
    warnings.warn("no CUDA device: OpenOOD's hard-coded .cuda() calls are made no-ops and everything runs on the "
                  "CPU", RuntimeWarning, stacklevel=3)
    originals = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = originals


def _run_pipeline(config) -> None:
    from openood.pipelines import get_pipeline

    get_pipeline(config).run()
    if not torch.distributed.is_available() or not torch.distributed.is_initialized() or \
            torch.distributed.get_rank() == 0:
        write_pipeline_record(config)


def write_pipeline_record(config) -> Path | None:
    """``<output_dir>/ood.run.json`` for the CSVs the pipeline wrote there (None when it wrote none)."""
    output_dir = Path(config.output_dir)
    files = sorted(output_dir.glob("ood*.csv")) if output_dir.is_dir() else []
    if not files:
        return None
    built = built_by_pipeline()
    section = config.postprocessor
    postprocessor = built.get("postprocessor")
    method = method_record(postprocessor) if postprocessor is not None else {
        "method": section.name, "hyperparameters": dict(section.get("postprocessor_args") or {})}
    network = built.get("network")
    bank = dict(getattr(network, "provenance", None) or {"network": config.network.name})
    if "image_transform" in built:  # what the pipeline's loaders applied (get_preprocessor)
        bank["image_transform"] = built["image_transform"]
    evaluator = config.get("evaluator") or {}
    batch_size = config.dataset.test.batch_size
    if evaluator.get("name") == "test_time":
        from .evaluator_support import evaluator_settings

        settings = evaluator_settings(evaluator)
        protocol = dict(protocol=settings["protocol"], seeds=settings["seeds"],
                        batch_size=settings["stream_batch_size"] or batch_size, order=settings["order"])
    else:
        protocol = dict(protocol="openood (ID test set, then each OOD set; no reset)", seeds=[],
                        batch_size=batch_size)
    record = run_record(methods={section.name: method}, text_banks={config.dataset.name: bank},
                        pipeline=config.pipeline.name, evaluator=evaluator.get("name"), **protocol)
    return write_run_record(output_dir / "ood.run.json", record, files)


def main(argv: list[str] | None = None) -> int:
    try:
        apply("all")
        from openood.utils import launch, setup_config
    except ImportError as error:
        print(f"openood_tanl's OpenOOD pipeline needs OpenOOD ({error}); pip install "
              "git+https://github.com/Jingkang50/OpenOOD", file=sys.stderr)
        return 2

    show_messages("stdout")  # our notices among OpenOOD's console lines, in its log file too
    sys.argv = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    config = setup_config()
    with cpu_only():
        launch(_run_pipeline, config.num_gpus, num_machines=config.num_machines,
               machine_rank=config.machine_rank, dist_url="auto", args=(config,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
