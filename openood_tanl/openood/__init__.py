"""Everything that touches OpenOOD, and nothing else does (attributes are imported on first use; those of
``postprocessors`` and ``evaluators`` need OpenOOD installed).

* ``postprocessors``: OpenOOD ``BasePostprocessor`` subclasses around the registry's engines (``TANLPostprocessor``,
  ..., ``POSTPROCESSORS`` by name).
* ``evaluators``: ``TestTimeEvaluator`` (OpenOOD's ``Evaluator`` under a test-time protocol) and
  ``TestTimeOODEvaluator`` (``evaluator.name: test_time`` in the ``main.py`` pipeline); ``evaluator_support`` holds
  their OpenOOD-free parts.
* ``registration``: the OpenOOD lookups we wrap so our names resolve (``apply``, ``restore``), and our network for
  OpenOOD's ``network:`` config section.
* ``datasets``: OpenOOD v1.5's benchmark definitions; ``main``: ``python -m openood_tanl.openood.main`` and
  ``cpu_only()`` (OpenOOD's hard-coded ``.cuda()`` as no-ops, for a block, on a machine without CUDA).
"""
from .._lazy import lazy_exports

_EXPORTS = {
    "EnginePostprocessor": ".postprocessors", "TANLPostprocessor": ".postprocessors",
    "TANLOfficialPostprocessor": ".postprocessors", "MCMPostprocessor": ".postprocessors",
    "NegLabelPostprocessor": ".postprocessors", "AdaNegPostprocessor": ".postprocessors",
    "POSTPROCESSORS": ".postprocessors", "TestTimeEvaluator": ".evaluators", "TestTimeOODEvaluator": ".evaluators",
    "apply": ".registration", "restore": ".registration", "register": ".registration",
    "network_from_config": ".registration", "NETWORKS": ".registration", "EVALUATORS": ".registration",
    "cpu_only": ".main", "StreamStateWarning": ".postprocessors",
}
_SUBMODULES = ("datasets", "evaluator_support", "evaluators", "main", "postprocessors", "registration")
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)
