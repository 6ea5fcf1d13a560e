"""TANL with the official run's float16 numerics (``precision="official-fp16"``).

The authors' numbers come from a CLIP whose weights the official ``build_model`` converted to float16, and nothing
there calls ``.float()`` on the text or image side. What that makes of each stage of TANL:

- logits: ``logit_scale * features @ text`` with float16 features and texts (the scale a float32 0-d tensor),
  against the texts laid out as the official code keeps them ([D, C + N], contiguous);
- the initial memories: a float16 softmax of the ID texts' and the noise images' logits, then float32;
- a batch's activations (what enters the memories): the float32 softmax of its float16 logits;
- the score that moves the threshold and picks the confident rows: float32 prefix softmaxes of float16 logits
  computed against the current selection (a [D, C + M] product of their own, as there);
- the returned score and the initial score memory: every prefix softmax, its ID sum and their mean in float16
  (``literal_activation_aware_score``), so scores take at most a few thousand distinct values.

Everything else (memories, threshold search, selection) is TANL's. Same hyperparameters, same contract; the inputs
are the float16-valued embeddings the ``official-fp16`` network computes (float32 tensors holding float16 values:
converted back to float16 exactly). Inside a ``Lockstep`` this engine computes its own logits from the features.
"""
from __future__ import annotations

import functools

import torch

from .scoring import activation_aware_score, literal_activation_aware_score
from .tanl import TANL
from .validation import check_batch

__all__ = ["OfficialFP16TANL"]


class OfficialFP16TANL(TANL):
    """``TANL`` computing as the official float16 run (see the module docstring); arguments as ``TANL``.

    ``score`` is float32 holding float16 values (ties are as frequent as there); ``pred`` is the argmax of the
    float16 ID logits.
    """

    _texts_half: torch.Tensor | None = None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_texts_half"] = None  # rebuilt on use
        return state

    # ------------------------------------------------------------------ the official operands
    @functools.cached_property
    def _scale(self) -> torch.Tensor:
        """The logit scale as the official code holds it: a float32 0-d tensor on the device."""
        return torch.tensor(self.logit_scale, dtype=torch.float32, device=self.device)

    @property
    def _texts(self) -> torch.Tensor:
        """[D, C + N] float16: the official ``text_features_all``."""
        if self._texts_half is None:
            self._texts_half = torch.cat([self.id_text, self.corpus_text]).half().t().contiguous()
        return self._texts_half

    def _selected_texts(self, selected: torch.Tensor) -> torch.Tensor:
        """[D, C + M] float16: the ID texts, then the ranked negatives ``selected`` (corpus indices)."""
        texts = self._texts
        return torch.cat([texts[:, : self.num_classes], texts[:, self.num_classes:].t()[selected].t()], dim=-1)

    def _select(self, preference: torch.Tensor) -> torch.Tensor:
        """Top-M corpus indices, as the official code ranks them (a descending sort: its order among equal
        preferences, frequent where float16 activations underflow to 0)."""
        return preference.sort(descending=True)[1][: self.num_negatives]

    # ------------------------------------------------------------------ the float16 stages
    def _initial_activations(self, rows: str, keep: torch.Tensor) -> torch.Tensor:
        """The float16 softmax of every ID text (or noise feature) against every text, then the kept rows."""
        pseudo = self._texts[:, : self.num_classes].t() if rows == "id" else self.noise_features.half()
        activations = torch.softmax(self._scale * pseudo @ self._texts, dim=1)
        return activations.index_select(0, keep)[:, self.num_classes:].float()

    def _initial_scores(self) -> torch.Tensor:
        selected = self._selected_texts(self.selected)
        id_logits = self._scale * self._texts[:, : self.num_classes].t() @ selected
        noise_logits = self._scale * self.noise_features.half() @ selected
        return torch.cat([literal_activation_aware_score(logits, self.num_classes, self.score_step)
                          for logits in (id_logits, noise_logits)]).float()

    @torch.no_grad()
    def step(self, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``TANL.step`` with the official float16 numerics; ``image_features`` [B, D] as ``TANL.step``."""
        return self.step_logits(check_batch(image_features, self.id_text, owner=self))

    @torch.no_grad()
    def step_logits(self, features: torch.Tensor, logits=None, softmax=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` on [B, D] checked features; shared ``logits`` and ``softmax`` (a ``Lockstep``'s float32 ones)
        are not the official float16 ones and are not used."""
        half_logits = self._scale * features.half() @ self._texts  # [B, C + N] float16
        logits = half_logits.float()  # exactly the float16 values
        softmax = torch.softmax(logits, 1, out=self._workspace("softmax", logits.shape[0]))
        return super().step_logits(features, logits, softmax, float32_exponentials=True)  # unused by its scores

    @torch.no_grad()
    def corpus_activations(self, image_features: torch.Tensor) -> torch.Tensor:
        """``TANL.corpus_activations`` as this engine's memories hold them: the float32 softmax of the float16
        logits."""
        logits = (self._scale * check_batch(image_features, self.id_text, owner=self).half() @ self._texts).float()
        return torch.softmax(logits, 1)[:, self.num_classes:]

    def _memory_score(self, features, logits, selected, id_lse, float32_exponentials) -> torch.Tensor:
        selected_logits = (self._scale * features.half() @ self._selected_texts(selected)).float()
        return activation_aware_score(selected_logits[:, : self.num_classes], selected_logits[:, self.num_classes:],
                                      self.score_step).float()

    def _returned_score(self, features, logits, selected, id_lse, float32_exponentials) -> torch.Tensor:
        selected_logits = self._scale * features.half() @ self._selected_texts(selected)
        return literal_activation_aware_score(selected_logits, self.num_classes, self.score_step).float()
