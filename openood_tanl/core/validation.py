"""Input checks shared by the engines: errors that name the problem and the fix.

L2 normalisation policy (every engine: text banks, noise and test image embeddings all go through ``as_rows``)
------------------------------------------------------------------------------------------------------------------
The engines compute cosine similarities as plain dot products, so they take L2-normalised rows. ``as_rows``
measures every row's L2 norm (in float32, after the upcast) and:

* accepts the input unchanged when every norm is within ``NORM_TOLERANCE`` (1e-3, relative) of 1. Inputs
  within tolerance are never touched, so the check never changes their results. The test looks
  at the values only, never at the dtype, so a float16/bfloat16 input and its float32 upcast are treated alike
  (same results). A unit row stored in float16 stays within 1e-3 (its rounding moves the norm by <= 4.9e-4); one
  stored in bfloat16 may not (up to 3.9e-3) and is renormalised, with the warning: normalise after the upcast;
* otherwise normalises the *whole* input exactly as ``F.normalize(x.float(), dim=-1)`` would (so the results
  equal those of passing normalised rows) and warns with a ``NormalisationWarning`` that names the input, the
  observed norm range and the fix ``pass F.normalize(x, dim=-1)``. The warning is given once per
  (owner, input name): an engine warns once for its ``image_features`` however many batches follow;
* refuses a zero row (norm 0: it has no direction) with a ValueError naming the input and the row.

Cost: one pass over the [B, D] rows (the norms also catch NaN and Inf: a non-finite value gives a non-finite
norm) and one host read: the smallest and largest norm come back together in one ``.tolist()``. Only an input
that is off (normalised: one more pass) or bad (the error path) does more.
"""
from __future__ import annotations

import math
import warnings
import weakref

import torch

from .errors import UserError, UserTypeError

__all__ = ["as_rows", "check_batch", "batch_rows", "float_rows", "settled_rows", "check_int", "check_real",
           "check_unit", "check_flag", "check_seed", "check_logit_scale", "check_hyperparameters", "check_same_dim",
           "NormalisationWarning", "NORM_TOLERANCE"]

#: Largest accepted ``|norm - 1|`` of a row (relative to 1), whatever the dtype.
NORM_TOLERANCE = 1e-3


class NormalisationWarning(UserWarning):
    """An input's rows were not L2-normalised; the engine normalised them (see ``openood_tanl.core.validation``)."""


# (id(owner), input name) already warned about; entries leave when their owner is garbage-collected.
_warned: set[tuple[int, str]] = set()


def _warn_once(owner, name: str, message: str) -> None:
    if owner is not None:
        key = (id(owner), name)
        if key in _warned:
            return
        try:
            weakref.finalize(owner, _warned.discard, key)
        except TypeError:  # an owner that takes no weak reference: warn every time rather than leak
            pass
        else:
            _warned.add(key)
    warnings.warn(message, NormalisationWarning, stacklevel=4)


def _row_norms(tensor: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(tensor, dim=1)


def float_rows(name: str, tensor: torch.Tensor, device: torch.device | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``tensor`` as a 2-D float32 matrix on ``device`` and its [R] row norms (None when empty), not yet checked:
    read ``norms.aminmax()`` (with whatever else the caller reads at the same time) and pass it to
    ``settled_rows``. Refuses a non-tensor, a non-2-D or a non-floating input."""
    if not isinstance(tensor, torch.Tensor):
        raise UserTypeError(f"{name} must be a torch.Tensor of shape [rows, dim], got {type(tensor).__name__}")
    if tensor.ndim != 2:
        raise UserError(f"{name} must be 2-D [rows, dim], got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise UserTypeError(f"{name} must be floating point (float32/float16/bfloat16), got {tensor.dtype}")
    tensor = tensor.to(device=device, dtype=torch.float32)
    return tensor, (_row_norms(tensor) if tensor.numel() else None)


def settled_rows(name: str, tensor: torch.Tensor, norms: torch.Tensor, low: float, high: float, *,
                 owner=None) -> torch.Tensor:
    """The policy of the module docstring for ``float_rows``' output, given its smallest and largest row norm:
    ``tensor`` itself when every norm is within tolerance, else normalised (with the warning) or refused."""
    if not (math.isfinite(low) and math.isfinite(high)) or low == 0.0:
        return _unusual(name, tensor, owner)
    if abs(low - 1.0) <= NORM_TOLERANCE and abs(high - 1.0) <= NORM_TOLERANCE:
        return tensor
    _warn_once(owner, name, _off_message(name, low, high))
    return tensor / norms.unsqueeze(1)  # = F.normalize(tensor, dim=-1): the norms are positive


def as_rows(name: str, tensor: torch.Tensor, device: torch.device | None = None, *, owner=None) -> torch.Tensor:
    """Check ``tensor`` is a finite 2-D floating matrix of L2-normalised rows; return it in float32 on ``device``.

    Rows off unit norm are normalised with a warning (once per ``owner`` and ``name``; every call when ``owner``
    is None); a zero row is refused. See the module docstring for the policy.
    """
    tensor, norms = float_rows(name, tensor, device)
    if norms is None:
        return tensor  # the callers name an empty input themselves
    low, high = torch.stack(torch.aminmax(norms)).tolist()  # the one host sync (a NaN norm propagates)
    return settled_rows(name, tensor, norms, low, high, owner=owner)


def _off_message(name: str, low: float, high: float) -> str:
    return (f"{name} rows are not L2-normalised (row norms in [{low:.6g}, {high:.6g}], accepted: 1 +- "
            f"{NORM_TOLERANCE:g}); they were normalised for you. The engines compare rows by dot product: pass "
            f"F.normalize(x, dim=-1) (torch.nn.functional; for float16/bfloat16 encoders, normalise after the "
            f"upcast: F.normalize(x.float(), dim=-1)) to silence this warning")


def _unusual(name: str, tensor: torch.Tensor, owner) -> torch.Tensor:
    """Slow path for a non-finite or zero norm: NaN/Inf values, zero rows, or norms that over/underflow."""
    if not bool(torch.isfinite(tensor).all()):
        raise UserError(f"{name} contains NaN or Inf; check the encoder output (e.g. float16 overflow)")
    largest = tensor.abs().amax(dim=1, keepdim=True)  # [R, 1]
    zero = (largest.squeeze(1) == 0).nonzero().squeeze(1)
    if zero.numel():
        rows = zero[:5].tolist()
        raise UserError(f"{name} has {zero.numel()} zero row(s) (e.g. row {rows[0]}: all {tensor.shape[1]} values "
                        f"are 0), which have no direction to L2-normalise; drop them or check the encoder "
                        f"output (rows {rows}{'...' if zero.numel() > 5 else ''})")
    # Finite, non-zero rows whose squared norm over- or underflows float32: scale each row first.
    scaled = tensor / largest
    normalised = scaled / _row_norms(scaled).unsqueeze(1)
    _warn_once(owner, name, _off_message(name, *_extreme_norms(tensor)))
    return normalised


def _extreme_norms(tensor: torch.Tensor) -> tuple[float, float]:
    norms = _row_norms(tensor.double())
    return float(norms.min()), float(norms.max())


def check_batch(image_features: torch.Tensor, text: torch.Tensor, *, owner=None) -> torch.Tensor:
    """A non-empty [B, D] batch of finite, L2-normalised image embeddings matching ``text`` [*, D], as float32 on
    its device.

    Off-norm rows are normalised with a warning given once per ``owner`` (default: the ``text`` tensor, which
    each engine owns), so a stream of unnormalised batches warns once, not once per batch.
    """
    features, norms = batch_rows(image_features, text)
    low, high = torch.stack(torch.aminmax(norms)).tolist()  # the one host sync (a NaN norm propagates)
    return settled_rows("image_features", features, norms, low, high, owner=text if owner is None else owner)


def batch_rows(image_features: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``check_batch`` before its host read: the [B, D] float32 batch on ``text``'s device and its [B] row norms,
    for ``settled_rows("image_features", ...)`` once the caller has read their extremes."""
    if isinstance(image_features, torch.Tensor) and image_features.ndim == 2:
        if image_features.shape[1] != text.shape[1]:
            raise UserError(f"image_features have dimension {image_features.shape[1]} but the text bank has "
                            f"{text.shape[1]}; encode images and texts with the same model")
        if image_features.shape[0] == 0:
            raise UserError("image_features is an empty batch; pass at least one row")
    return float_rows("image_features", image_features, text.device)


def _refuse_non_numbers(name: str, value, kind: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        shown = "empty" if value in ("", None) else repr(value)
        raise UserTypeError(f"{name} must be {kind}, got {shown}" + (" (a string: write the number without quotes)"
                                                                   if isinstance(value, str) and value else ""))


def check_int(name: str, value, low: int, high: int | None = None, hint: str = "") -> int:
    """An integer (an integral float is accepted; a string, bool or None is not) in [low, high]."""
    _refuse_non_numbers(name, value, "an integer")
    try:
        integral = float(value).is_integer()
    except (TypeError, ValueError, OverflowError):
        integral = isinstance(value, int)
    if not integral:
        raise UserTypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise UserError(f"{name} must be {bound}, got {value}" + (f" ({hint})" if hint else ""))
    return value


def check_real(name: str, value, low: float | None = None, high: float | None = None, *,
               low_open: bool = False) -> float:
    """A finite real number (a string, bool or None is refused) in [low, high] (``(low, high]`` with
    ``low_open``)."""
    _refuse_non_numbers(name, value, "a number")
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise UserTypeError(f"{name} must be a number, got {value!r}") from error
    if not math.isfinite(number):
        raise UserError(f"{name} must be a finite number, got {value}")
    below = low is not None and (number <= low if low_open else number < low)
    if below or (high is not None and number > high):
        bounds = ("(" if low_open else "[") + (f"{low:g}" if low is not None else "-inf") + ", " + \
            (f"{high:g}]" if high is not None else "inf)")
        raise UserError(f"{name} must be in {bounds}, got {value}")
    return number


def check_unit(name: str, value) -> float:
    """A number in [0, 1]."""
    return check_real(name, value, 0.0, 1.0)


def check_flag(name: str, value) -> bool:
    """A boolean (``True``/``False``; 0 and 1 are accepted)."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise UserTypeError(f"{name} must be true or false, got {value!r}")


def check_seed(value) -> int:
    """A seed: an integer in [0, 2**63 - 1]."""
    return check_int("seed", value, 0, 2**63 - 1, hint="a non-negative 64-bit integer")


def check_hyperparameters(checks, values, owner: str) -> dict:
    """Apply ``checks`` (name -> ``check(name, value)``) to ``values``; unknown names are a TypeError naming the
    valid ones. Returns the checked (normalised) values."""
    unknown = [name for name in values if name not in checks]
    if unknown:
        raise UserTypeError(f"{owner} got unknown hyperparameter(s) {unknown}; valid: {', '.join(checks)}")
    return {name: checks[name](name, value) for name, value in values.items()}


#: Below this, a logit scale is most likely CLIP's log value (``logit_scale`` before ``.exp()``: 4.6 for 100).
LOG_SCALE_SUSPECT = 5.0


def check_logit_scale(value) -> float:
    """CLIP's multiplier ``logit_scale.exp()``: positive and finite; a value below 5 warns (it looks like the log)."""
    scale = check_real("logit_scale", value)
    if scale <= 0:
        raise UserError(f"logit_scale must be a positive number (CLIP's logit_scale.exp(), e.g. 100), got {value}")
    if scale < LOG_SCALE_SUSPECT:
        warnings.warn(f"logit_scale={scale:g} looks like CLIP's log scale (the parameter before .exp(); "
                      f"exp({scale:g}) = {math.exp(scale):.4g}): the engines take the multiplier, logit_scale.exp(), "
                      "e.g. 100 for OpenAI CLIP. Softmax shares at this scale are nearly uniform.", UserWarning,
                      stacklevel=3)
    return scale


def check_same_dim(id_text, negative_text) -> None:
    """Text banks of one model share their embedding dimension (checked before any other check)."""
    if (isinstance(id_text, torch.Tensor) and isinstance(negative_text, torch.Tensor) and id_text.ndim == 2
            and negative_text.ndim == 2 and id_text.shape[1] != negative_text.shape[1]):
        raise UserError(f"embedding dimensions differ: id_text {id_text.shape[1]}, negative_text "
                        f"{negative_text.shape[1]}; encode both with the same model")
