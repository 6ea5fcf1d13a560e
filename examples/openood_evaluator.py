"""TANL inside OpenOOD: the CLIP network, OpenOOD's data handling, the paper's mixed-stream protocol.

Needs OpenOOD (pip install git+https://github.com/Jingkang50/OpenOOD), its ImageNet data under ./data (OpenOOD's
layout: benchmark_imglist/ and images_largescale/), and internet once for the ViT-B-16 OpenAI weights (or
pretrained="/path/to/checkpoint" with quick_gelu=True). The text bank is cached under ~/.cache/openood_tanl.

    python examples/openood_evaluator.py
"""
import os
import sys

import torch

if not os.path.isdir("./data/benchmark_imglist"):
    sys.exit("usage: python examples/openood_evaluator.py, run where ./data holds OpenOOD's data (benchmark_imglist/, "
             "images_largescale/; OpenOOD's scripts/download/download.py fetches them)")

import openood_tanl  # noqa: E402  tanl, tanl_official, mcm, neglabel, adaneg become names in OpenOOD's evaluation API
from openood_tanl.openood.evaluators import TestTimeEvaluator  # noqa: E402

device = "cuda" if torch.cuda.is_available() else "cpu"
net, preprocess = openood_tanl.create_network("ViT-B-16", pretrained="openai", id_classes="imagenet",
                                              corpus="wordnet", device=device)

# The paper's protocol: for each OOD set, reset TANL and score ID + that OOD set as one shuffled stream.
evaluator = TestTimeEvaluator(net, id_name="imagenet", data_root="./data", config_root=openood_tanl.config_root(),
                              preprocessor=preprocess, postprocessor_name="tanl", batch_size=256,
                              protocol="mixed", seeds=(0, 1, 2))
print(evaluator.eval_ood())  # OpenOOD's table (+ FPR@95(ID+), the CLIP-papers' convention), mean over seeds

# OpenOOD's own Evaluator works too (ID set first, then each OOD set, no reset in between: it warns that TANL's
# memories carry over), and on a CPU inside cpu_only():
# from openood.evaluation_api import Evaluator
# from openood_tanl.openood import cpu_only
# with cpu_only():
#     Evaluator(net, "imagenet", "./data", openood_tanl.config_root(), preprocess, "tanl", batch_size=256).eval_ood()
