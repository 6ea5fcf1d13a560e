"""The test-time protocols by name (no imports: the command line's help reads them)."""

#: Protocol name -> the stream it replays (see ``openood_tanl.evaluation.protocols``).
PROTOCOL_DESCRIPTIONS = {
    "mixed": "the paper's: per OOD set, a reset, then the ID test set and that OOD set in one seeded shuffle",
    "id-first": "per OOD set, a reset, then the shuffled ID set, then the shuffled OOD set",
    "ood-first": "per OOD set, a reset, then the shuffled OOD set, then the shuffled ID set",
    "temporal": "one reset; the OOD sets one after another (--order), each shuffled with its share of the ID set",
}
PROTOCOLS = tuple(PROTOCOL_DESCRIPTIONS)
