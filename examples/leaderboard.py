"""A leaderboard from Python: encode a benchmark once, replay it through several methods and seeds (then a sweep of
TANL's label count, every point in one lockstep replay).

The benchmark here is a YAML spec of image folders (works without OpenOOD), e.g. my_benchmark.yml:

    name: mybench
    id:
      folder: imagenet/val                     # one sub-folder per class
      classes: classes_folders.txt             # the sub-folders in label order (omit: sorted order)
    ood:
      far:
        textures: {folder: dtd/images}
        places: {list: places_list.txt, root: places/}

and a class-name file with one name a line, in the same label order:

    python examples/leaderboard.py my_benchmark.yml ./data class_names.txt
"""
import sys

import openood_tanl
from openood_tanl.bank import TextBank
from openood_tanl.evaluation import (
    StreamSettings,
    compare_methods,
    extract_benchmark,
    leaderboard_table,
    load_benchmark,
    markdown_table,
    match_id_classes,
    sweep,
)

if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python examples/leaderboard.py <benchmark spec .yml> <data root> <class-name file>")
    spec, data_root, class_file = sys.argv[1], sys.argv[2], sys.argv[3]
    images = load_benchmark(spec, data_root)
    images, mapping = match_id_classes(images, openood_tanl.class_names(class_file))  # refuses a mismatch
    print(mapping)
    net, preprocess = openood_tanl.create_network("ViT-B-16", pretrained="openai", id_classes=class_file)
    features = extract_benchmark(net, preprocess, images, None, net.model_key)  # once, into the default cache

    # tanl: the paper's setting; tanl_official: the authors' shipped script (alpha 0.0, gap 0.5)
    methods = {name: openood_tanl.configure(name) for name in ("mcm", "neglabel", "adaneg", "tanl", "tanl_official")}
    results = compare_methods(methods, TextBank.of(net), features, protocol="mixed", seeds=[0, 1, 2])
    board = leaderboard_table(results)
    print(markdown_table(board))
    board.to_csv("leaderboard.csv")

    curves = sweep({"tanl": methods["tanl"]}, "num_negatives", [1000, 5000, 10000], TextBank.of(net), features,
                   StreamSettings(protocol="mixed"), seeds=[0, 1, 2])
    print(curves["tanl"][["num_negatives", "AUROC", "FPR@95"]])
