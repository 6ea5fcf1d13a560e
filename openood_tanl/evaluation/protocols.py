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

Parallel streams (``replay.replay(..., workers=N)``): the OOD streams of ``mixed``, ``id-first`` and
``ood-first`` and the seeds are independent (a reset each), so they run in processes (``parallel``) with the
tables of one process; the engine factory must then be picklable (``MethodConfig.factory(bank)``). ``temporal`` is
a single stream: with one seed it runs sequentially whatever ``workers`` says (its seeds still run in parallel).
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

from ..core.errors import UserError

__all__ = ["PROTOCOL_DESCRIPTIONS", "PROTOCOLS", "BACKBONE_AXIS", "STREAM_ARGUMENTS", "StreamSettings",
           "check_protocol", "check_seeds", "check_settings", "check_stream_value"]

#: Protocol name -> the stream it replays.
PROTOCOL_DESCRIPTIONS = {
    "mixed": "the paper's: per OOD set, a reset, then the ID test set and that OOD set in one seeded shuffle",
    "id-first": "per OOD set, a reset, then the shuffled ID set, then the shuffled OOD set",
    "ood-first": "per OOD set, a reset, then the shuffled OOD set, then the shuffled ID set",
    "temporal": "one reset; the OOD sets one after another (--order), each shuffled with its share of the ID set",
}
PROTOCOLS = tuple(PROTOCOL_DESCRIPTIONS)

#: The stream's own parameters a sweep can vary (besides every hyperparameter): name -> what a value is.
#: The sweep axis over backbones (``comparison.sweep_backbones``; CLI ``sweep --argument backbone``): values
#: "MODEL:WEIGHTS".
BACKBONE_AXIS = "backbone"

STREAM_ARGUMENTS = {
    "batch_size": "embeddings per engine step (a whole number >= 1)",
    "id_ood_ratio": "ID samples per OOD sample in each stream: the larger side subsampled, seeded (a number > 0; "
                    "reset protocols)",
    "order": f"the sample order, i.e. the protocol ({', '.join(PROTOCOLS)})",
}


@dataclass(frozen=True)
class StreamSettings:
    """How a benchmark becomes streams (everything but the seed).

    Attributes:
        protocol: one of ``PROTOCOLS``.
        batch_size: embeddings per engine step.
        order: the temporal protocol's OOD set order (None: the benchmark's).
        id_ood_ratio: ID samples per OOD sample in each stream of the reset protocols: the larger side is
            subsampled (seeded per stream, independently of the shuffle); None keeps both sets whole.
        trace_window: record a stream trace, with windowed metrics over the last ``trace_window`` samples; None: no
            trace (nothing is read from the engines between steps).
    """

    protocol: str = "mixed"
    batch_size: int = 256
    order: tuple[str, ...] | None = None
    id_ood_ratio: float | None = None
    trace_window: int | None = None

    @classmethod
    def from_keywords(cls, protocol: str = "mixed", batch_size: int = 256, order: Sequence[str] | None = None,
                      id_ood_ratio: float | None = None, trace_window: int | None = None) -> "StreamSettings":
        """The settings of the keyword calls (``evaluate``, ``compare_methods``, the command line): ``order`` any
        sequence of OOD set names (empty or None: the benchmark's)."""
        return cls(protocol, batch_size, tuple(order) if order else None, id_ood_ratio, trace_window)

    def with_value(self, argument: str, value: Any) -> "StreamSettings":
        """These settings with one ``STREAM_ARGUMENTS`` entry set to ``value`` (checked); ``order`` sets the
        protocol (a temporal OOD set order is kept for ``temporal`` only)."""
        value = check_stream_value(argument, value)
        if argument == "order":
            return dataclasses.replace(self, protocol=value, order=self.order if value == "temporal" else None)
        return dataclasses.replace(self, **{argument: value})


def check_stream_value(argument: str, value: Any) -> Any:
    """A value of a ``STREAM_ARGUMENTS`` entry, checked and normalised (int batch size, float ratio, protocol)."""
    if argument not in STREAM_ARGUMENTS:
        raise UserError(f"'{argument}' is not a stream argument; choose one of {', '.join(STREAM_ARGUMENTS)}")
    if argument == "order":
        if value not in PROTOCOLS:
            raise UserError(f"order {value!r} is not a sample order; choose among {', '.join(PROTOCOLS)}")
        return value
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if argument == "batch_size":
        if not real or not float(value).is_integer() or value < 1:
            raise UserError(f"batch_size must be a whole number >= 1, got {value!r}")
        return int(value)
    if not real or not 0 < float(value) < float("inf"):
        raise UserError(f"id_ood_ratio must be a number > 0 (ID samples per OOD sample, e.g. 1 or 0.25), got "
                        f"{value!r}")
    return float(value)


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
        raise UserError(f"seeds must be whole numbers, got {seeds!r}") from error
    if not seeds:
        raise UserError("seeds must name at least one seed")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise UserError(f"seeds {seeds} repeat {repeated}: the same stream would be averaged with itself; give "
                        "distinct seeds (e.g. 0 1 2)")
    bad = [s for s in seeds if not 0 <= s < 2**63]
    if bad:
        raise UserError(f"seeds must be in [0, 2**63 - 1], got {bad}")
    return seeds


def check_protocol(protocol: str, ood_set_names: Sequence[str] | None = None, order: Sequence[str] | None = None,
                   seeds: Sequence[int] | None = None) -> str:
    """Refuse an unknown protocol, an ``order`` that is not a permutation of every OOD set (it would drop or repeat
    sets), ``order`` without the temporal protocol, and repeated seeds (a stream averaged with itself). Returns the
    protocol. ``ood_set_names`` None: the sets are not known yet (only the protocol and seeds are checked)."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol '{protocol}'; choose one of {', '.join(PROTOCOLS)}")
    if ood_set_names is not None and not ood_set_names:
        raise UserError("the benchmark has no OOD set")
    if order:
        if protocol != "temporal":
            raise UserError(f"an OOD set order applies to the temporal protocol only, not '{protocol}'")
        known = list(ood_set_names or [])
        unknown = [name for name in order if name not in known]
        repeated = sorted({name for name in order if list(order).count(name) > 1})
        missing = [name for name in known if name not in order]
        problems = ([f"unknown OOD sets {unknown}"] if unknown else []) + \
            ([f"repeats {repeated}"] if repeated else []) + ([f"leaves out {missing}"] if missing else [])
        if problems:
            raise UserError(f"the temporal order {list(order)} " + "; ".join(problems) + f": list every OOD set "
                            f"once, e.g. --order {' '.join(known)}")
    if seeds is not None:
        check_seeds(seeds)
    return protocol


def check_settings(settings: StreamSettings, ood_set_names: Sequence[str] | None = None,
                   seeds: Sequence[int] | None = None) -> StreamSettings:
    """``check_protocol`` plus the batch size, the ID:OOD ratio (reset protocols only: the temporal protocol
    splits the ID set among its segments) and the trace window. Returns ``settings``."""
    check_protocol(settings.protocol, ood_set_names, settings.order, seeds)
    check_stream_value("batch_size", settings.batch_size)
    if settings.id_ood_ratio is not None:
        check_stream_value("id_ood_ratio", settings.id_ood_ratio)
        if settings.protocol == "temporal":
            raise UserError("an ID:OOD ratio applies to the reset protocols (mixed, id-first, ood-first), not "
                            "'temporal' (which splits the ID set among its OOD segments); drop the ratio or "
                            "choose another protocol")
    window = settings.trace_window
    if window is not None and (isinstance(window, bool) or not float(window).is_integer() or window < 2):
        raise UserError(f"the trace window must be a whole number of samples >= 2, got {window!r}")
    return settings
