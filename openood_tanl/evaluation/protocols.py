"""The test-time protocols by name, and the checks of a protocol, an OOD set order and seeds (pure Python: the
command line's help reads them).

A test-time method adapts to what it has seen, so the order of the test stream matters. The paper's protocol
(``mixed``) resets the method for each OOD dataset and interleaves the ID test set with that OOD set in one
seeded shuffle. Others:

- ``id-first``: reset per OOD set; the (shuffled) ID set, then the (shuffled) OOD set.
- ``ood-first``: reset per OOD set; the OOD set, then the ID set.
- ``temporal``: one reset only; the OOD sets arrive one after another (benchmark order unless ``order`` is
  given), each shuffled together with its own equal share of the (shuffled) ID set; each OOD set is scored
  against the ID samples of its own segment.

Every protocol is a pure function of the features, the engine and the seed, so one encoding serves all OOD
sets, seeds, protocols, methods and sweep points.

Stream order. In ``mixed``, ``id-first`` and ``ood-first`` the stream of the i-th OOD set (``ood_sets()`` order)
is shuffled by its own generator, seeded from ``(seed, i)`` (numpy ``SeedSequence(seed, spawn_key=(i,))``), so
it does not depend on which OOD sets were scored before it. ``temporal`` is one stream shuffled by one generator
seeded with ``seed``.

Parallel streams (``replay.evaluate(..., workers=N)``): the OOD streams of ``mixed``, ``id-first`` and
``ood-first`` and the seeds are independent (a reset each), so they run in processes (``parallel``) with the
tables of one process; the engine factory must then be picklable (``MethodConfig.factory(bank)``). ``temporal`` is
a single stream: with one seed it runs sequentially whatever ``workers`` says (its seeds still run in parallel).
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["PROTOCOL_DESCRIPTIONS", "PROTOCOLS", "check_protocol", "check_seeds"]

#: Protocol name -> the stream it replays.
PROTOCOL_DESCRIPTIONS = {
    "mixed": "the paper's: per OOD set, a reset, then the ID test set and that OOD set in one seeded shuffle",
    "id-first": "per OOD set, a reset, then the shuffled ID set, then the shuffled OOD set",
    "ood-first": "per OOD set, a reset, then the shuffled OOD set, then the shuffled ID set",
    "temporal": "one reset; the OOD sets one after another (--order), each shuffled with its share of the ID set",
}
PROTOCOLS = tuple(PROTOCOL_DESCRIPTIONS)


def check_seeds(seeds) -> list[int]:
    """Seeds as a non-empty list of distinct ints in [0, 2**63) (an int, an iterable, or a comma-separated
    string); a repeat would average a stream with itself."""
    if isinstance(seeds, str):
        seeds = seeds.replace(",", " ").split()
    elif isinstance(seeds, int):
        seeds = [seeds]
    try:
        seeds = [int(seed) for seed in seeds]
    except (TypeError, ValueError) as error:
        raise ValueError(f"seeds must be whole numbers, got {seeds!r}") from error
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds {seeds} repeat {repeated}: the same stream would be averaged with itself; give "
                         "distinct seeds (e.g. 0 1 2)")
    bad = [s for s in seeds if not 0 <= s < 2**63]
    if bad:
        raise ValueError(f"seeds must be in [0, 2**63 - 1], got {bad}")
    return seeds


def check_protocol(protocol: str, ood_set_names: Sequence[str] | None = None, order: Sequence[str] | None = None,
                   seeds: Sequence[int] | None = None) -> str:
    """Refuse an unknown protocol, an ``order`` that is not a permutation of every OOD set (it would drop or repeat
    sets), ``order`` without the temporal protocol, and repeated seeds (a stream averaged with itself). Returns the
    protocol. ``ood_set_names`` None: the sets are not known yet (only the protocol and seeds are checked)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}'; choose one of {', '.join(PROTOCOLS)}")
    if ood_set_names is not None and not ood_set_names:
        raise ValueError("the benchmark has no OOD set")
    if order:
        if protocol != "temporal":
            raise ValueError(f"an OOD set order applies to the temporal protocol only, not '{protocol}'")
        known = list(ood_set_names or [])
        unknown = [name for name in order if name not in known]
        repeated = sorted({name for name in order if list(order).count(name) > 1})
        missing = [name for name in known if name not in order]
        problems = ([f"unknown OOD sets {unknown}"] if unknown else []) + \
            ([f"repeats {repeated}"] if repeated else []) + ([f"leaves out {missing}"] if missing else [])
        if problems:
            raise ValueError(f"the temporal order {list(order)} " + "; ".join(problems) + f": list every OOD set "
                             f"once, e.g. --order {' '.join(known)}")
    if seeds is not None:
        check_seeds(seeds)
    return protocol
