"""A leaderboard from Python: encode a benchmark once, replay it through several methods and seeds.

The benchmark here is a YAML spec of image folders (works without OpenOOD), e.g. my_benchmark.yml:

    name: mybench
    id: {folder: imagenet/val}                 # one sub-folder per class, sorted = label order
    ood:
      far:
        textures: {folder: dtd/images}
        places: {list: places_list.txt, root: places/}

    python examples/leaderboard.py my_benchmark.yml ./data
"""
import sys

import openood_tanl
from openood_tanl.evaluation import (compare_methods, extract_benchmark, leaderboard_table, load_benchmark,
                                     markdown_table)
from openood_tanl.protocol import TextBank
from openood_tanl.textbank import default_cache_dir

spec, data_root = sys.argv[1], sys.argv[2]
net, preprocess = openood_tanl.create_network("ViT-B-16", pretrained="openai", id_classes="imagenet")
images = load_benchmark(spec, data_root)
features = extract_benchmark(net, preprocess, images, default_cache_dir() / "features", net.model_key)  # once

# tanl: the paper's setting; tanl_official: the authors' shipped script (alpha 0.0, gap 0.5)
methods = {name: openood_tanl.get_postprocessor(name)
           for name in ("mcm", "neglabel", "adaneg", "tanl", "tanl_official")}
results = compare_methods(methods, TextBank.of(net), features, protocol="mixed", seeds=[0, 1, 2])
board = leaderboard_table(results)
print(markdown_table(board))
board.to_csv("leaderboard.csv")
