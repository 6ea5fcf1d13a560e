"""OpenOOD's ``main.py`` pipeline with openood-tanl's names registered.

    python -m openood_tanl.main --config <dataset.yml> <dataset_ood.yml> configs/networks/clip_tanl.yml \\
        <pipeline.yml> <preprocessor.yml> configs/postprocessors/tanl.yml [--key.sub value ...]

OpenOOD has no plugin discovery and its ``main.py`` is not part of its installed package: this entry point
registers our postprocessors and network, parses the configs with OpenOOD's ``setup_config`` and runs OpenOOD's
own pipeline. OpenOOD hard-codes ``.cuda()`` in places; on a machine without CUDA those calls are made no-ops
(with a warning) so the pipeline runs on the CPU.
"""
from __future__ import annotations

import sys
import warnings

import torch

from .postprocessors.base import OPENOOD_IMPORT_ERROR
from .registry import register


def _allow_cpu_only() -> None:
    if torch.cuda.is_available():
        return
    warnings.warn("no CUDA device: OpenOOD's hard-coded .cuda() calls are made no-ops and everything runs on the "
                  "CPU", RuntimeWarning, stacklevel=2)
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self


def _run_pipeline(config) -> None:
    from openood.pipelines import get_pipeline

    get_pipeline(config).run()


def main(argv: list[str] | None = None) -> int:
    if not register():
        print(f"openood_tanl.main needs OpenOOD: {OPENOOD_IMPORT_ERROR}", file=sys.stderr)
        return 2
    from openood.utils import launch, setup_config

    sys.argv = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    config = setup_config()
    _allow_cpu_only()
    launch(_run_pipeline, config.num_gpus, num_machines=config.num_machines,
           machine_rank=config.machine_rank, dist_url="auto", args=(config,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
