"""The TANL engine on embeddings: test-time activated negative labels (Activation Matters, CVPR 2026).

Pure torch: no OpenOOD and no open_clip import. Everything runs on the device of ``id_text`` and in float32
(float16/bfloat16 inputs are upcast); only ``threshold`` reads a value back to the host.
"""
from __future__ import annotations

import torch

from .engine import OfficialName, check_bank_columns
from .errors import UserError
from .memory import ActivationMemory
from .scoring import (
    FLOAT32_EXPONENT_RANGE,
    activation_aware_score,
    gather_columns,
    id_logsumexp,
    otsu_threshold,
    threshold_grid,
)
from .validation import (
    as_rows,
    batch_rows,
    check_batch,
    check_hyperparameters,
    check_int,
    check_logit_scale,
    check_seed,
    check_unit,
    settled_rows,
)
from .workspace import Workspaces

__all__ = ["TANL", "OFFICIAL_NAMES", "HYPERPARAMETER_CHECKS"]

#: Our hyperparameter -> where it lives in the official ``ActivatedNegPostprocessor``.
OFFICIAL_NAMES = {
    "num_negatives": OfficialName("beta"),
    "memory_length": OfficialName("memleng"),
    "gap": OfficialName("gap"),
    "alpha": OfficialName("alpha"),
    "score_step": OfficialName("gamma"),
    "score_memory_length": OfficialName(None, "score_queue_len, hard-coded 20000"),
    "seed": OfficialName(None, "the shuffle of the initial memories uses the unseeded global RNG"),
}

#: Each hyperparameter's check, independent of the text bank (``num_negatives`` is also bounded by the corpus size).
HYPERPARAMETER_CHECKS = {
    "num_negatives": lambda name, value: check_int(name, value, 1),
    "memory_length": lambda name, value: check_int(name, value, 1),
    "gap": check_unit,
    "alpha": check_unit,
    "score_step": lambda name, value: check_int(name, value, 0),
    "score_memory_length": lambda name, value: check_int(name, value, 1),
    "seed": lambda name, value: check_seed(value),
}


class TANL:
    """Test-time Activated Negative Labels scorer for CLIP-like embeddings.

    Args:
        id_text: [C, D] L2-normalised ID class text embeddings.
        corpus_text: [N, D] L2-normalised embeddings of the whole negative-label corpus.
        noise_features: [K, D] L2-normalised image embeddings of noise images (seed of the OOD memory).
        logit_scale: CLIP's temperature multiplier (``logit_scale.exp()``, 100 for OpenAI CLIP).
        bank_columns: [C + N] the columns of a text bank's [ID | corpus] logits that [ID | corpus_text] are (the
            ``Engine`` contract): the bank's corpus in another order (``negmining``: the official network's
            layout); None: in the bank's order. ``selected`` indexes ``corpus_text`` either way.
        num_negatives: M, negatives used to score (official ``beta``; paper 1000).
        memory_length: L, rows kept in each FIFO activation memory (official ``memleng``; paper 300).
        gap: g, margin around the adaptive threshold t for confident samples (official ``gap``; paper 0.2).
        alpha: weight of the memory mean when blended with the current batch (official ``alpha``; paper 0.95).
        score_step: k, prefix step of the activation-aware score (official ``gamma``): 0 = NegLabel sum score,
            1 = the paper's score, k = prefixes of k, 2k, ...
        score_memory_length: scores kept for the threshold search (hard-coded 20000 officially).
        seed: seeds the shuffle of the initial memories.

    Every input is checked by the package's L2 policy (``openood_tanl.core.validation``): when a row's norm is
    off 1 by more than 1e-3 (relative, whatever the dtype), the input is normalised, with one
    ``NormalisationWarning`` per engine and input name; a zero row is a ValueError.

    The engine is ready after construction (``reset`` is called). ``step`` returns, for a batch of image
    embeddings, the ID prediction and the score (higher = more in-distribution) and then learns from the batch.

    Learned state (valid after ``reset``/``step``, read-only): ``threshold`` (last adaptive threshold t),
    ``selected`` ([M] corpus indices that scored the last step, strongest first), ``memory_fill`` ((ID, OOD)
    activation rows held), ``admitted`` ([2, B] bool: the last batch's rows pushed into the (ID, OOD) memory).
    ``corpus_activations(features)`` is what the memories hold for a batch (stream traces build an oracle
    selection from it).
    """

    hyperparameter_checks = HYPERPARAMETER_CHECKS
    learned_state = ("threshold", "selected", "memory_fill", "admitted")
    official_names = OFFICIAL_NAMES

    def __init__(
        self,
        id_text: torch.Tensor,
        corpus_text: torch.Tensor,
        noise_features: torch.Tensor,
        logit_scale: float = 100.0,
        bank_columns: torch.Tensor | None = None,
        *,
        num_negatives: int = 1000,
        memory_length: int = 300,
        gap: float = 0.2,
        alpha: float = 0.95,
        score_step: int = 1,
        score_memory_length: int = 20000,
        seed: int = 0,
    ):
        given = {"id_text": id_text, "corpus_text": corpus_text, "noise_features": noise_features}
        dims = {name: rows.shape[1] for name, rows in given.items()
                if isinstance(rows, torch.Tensor) and rows.ndim == 2}
        if len(dims) == 3 and len(set(dims.values())) != 1:  # named before any L2 check warns about the rows
            raise UserError(f"embedding dimensions differ: {dims}; encode all three with the same model")
        self.id_text = as_rows("id_text", id_text, owner=self)
        device = self.id_text.device
        self.corpus_text = as_rows("corpus_text", corpus_text, device, owner=self)
        self.noise_features = as_rows("noise_features", noise_features, device, owner=self)
        for name, rows in (("id_text", self.id_text), ("corpus_text", self.corpus_text),
                           ("noise_features", self.noise_features)):
            if rows.shape[0] == 0:
                raise UserError(f"{name} is empty; it needs at least one row")
        self.logit_scale = check_logit_scale(logit_scale)
        self.bank_columns = check_bank_columns(bank_columns, self.num_classes + self.corpus_size, "TANL")
        self.num_negatives = check_int("num_negatives", num_negatives, 1, self.corpus_text.shape[0],
                                        hint=f"the corpus has {self.corpus_text.shape[0]} words")
        values = check_hyperparameters(self.hyperparameter_checks, dict(
            num_negatives=num_negatives, memory_length=memory_length, gap=gap, alpha=alpha, score_step=score_step,
            score_memory_length=score_memory_length, seed=seed), "TANL")
        self.memory_length, self.gap, self.alpha = values["memory_length"], values["gap"], values["alpha"]
        self.score_step, self.score_memory_length = values["score_step"], values["score_memory_length"]
        self.seed = values["seed"]
        self._text: torch.Tensor | None = None  # [C + N, D] for step's one matmul, built on its first use
        self._workspaces = Workspaces()
        self._grid = threshold_grid(device)
        self._bound_targets = torch.tensor([1.0, 0.0], dtype=torch.float64, device=device)
        self._id_memory = ActivationMemory(self.memory_length, self.corpus_size, device)
        self._ood_memory = ActivationMemory(self.memory_length, self.corpus_size, device)
        self.reset()

    def __getstate__(self) -> dict:
        """Pickled without what is rebuilt on use: the [ID | corpus] text of ``step`` (the scratch buffers,
        ``_workspaces``, pickle empty)."""
        state = self.__dict__.copy()
        state["_text"] = None
        return state

    # ------------------------------------------------------------------ sizes
    @property
    def device(self) -> torch.device:
        return self.id_text.device

    @property
    def num_classes(self) -> int:
        return self.id_text.shape[0]

    @property
    def corpus_size(self) -> int:
        return self.corpus_text.shape[0]

    # ------------------------------------------------------------------ state
    def reset(self) -> "TANL":
        """Return to the initial state of a new test stream (deterministic given ``seed``).

        ID memory: activations of the ID text embeddings used as pseudo-images; OOD memory: activations of the
        noise embeddings; each shuffled by a generator seeded with ``seed`` and cut to its last L rows. Score
        memory: scores of the ID texts, then of the noise embeddings, under the first selection.
        """
        generator = torch.Generator().manual_seed(self.seed)
        id_order = torch.randperm(self.num_classes, generator=generator)
        noise_order = torch.randperm(self.noise_features.shape[0], generator=generator)
        # Only the rows that survive the cut to L are ever used: compute activations for those alone.
        keep_id = id_order[-self.memory_length:].to(self.device)
        keep_noise = noise_order[-self.memory_length:].to(self.device)
        self._id_memory.fill(self._initial_activations("id", keep_id))
        self._ood_memory.fill(self._initial_activations("noise", keep_noise))

        self.selected = self._select(self._ood_memory.mean() - self._id_memory.mean())
        initial_scores = self._initial_scores()
        # zeros, not empty: the unused tail is then part of a deterministic initial state, bitwise the same after
        # any stream
        self._score_memory = torch.zeros(self.score_memory_length, dtype=torch.float32, device=self.device)
        self._score_count = 0
        self._score_head = 0
        self._remember_scores(initial_scores)
        self._threshold = torch.tensor(float("nan"))
        self._admitted = torch.zeros(2, 0, dtype=torch.bool, device=self.device)
        return self

    @property
    def threshold(self) -> float:
        """The adaptive threshold t used by the last ``step`` (NaN before the first step)."""
        return float(self._threshold)

    @property
    def memory_fill(self) -> tuple[int, int]:
        """Rows held in the (ID, OOD) activation memories (the name every stateful engine shares)."""
        return self._id_memory.count, self._ood_memory.count

    @property
    def admitted(self) -> torch.Tensor:
        """[2, B] bool: the rows of the last batch pushed into the (ID, OOD) memory, in batch order ([2, 0] after
        ``reset`` and ``load_state_dict``). The memories are FIFOs: they hold their newest ``memory_fill`` rows, so
        of more than L rows pushed at once only the last L stay."""
        return self._admitted

    @torch.no_grad()
    def corpus_activations(self, image_features: torch.Tensor) -> torch.Tensor:
        """[B, D] image embeddings -> [B, N] float32: the rows a batch pushes into the memories (the corpus part
        of the softmax over [ID | corpus] of ``logit_scale`` * cosine). Reads no state and changes none."""
        return self._activations(check_batch(image_features, self.id_text, owner=self))

    def state_dict(self) -> dict:
        """The stream state (memories, score memory, threshold, selection) as tensors and ints, torch's convention:
        ``torch.save`` it, load it with ``weights_only=True``, and ``load_state_dict`` continues the stream
        bitwise. Hyperparameters and the text bank are not in it: load it into an engine built the same way."""
        return {"id_memory": self._id_memory.state_dict(), "ood_memory": self._ood_memory.state_dict(),
                "score_memory": self._score_memory.clone(), "score_count": self._score_count,
                "score_head": self._score_head, "threshold": self._threshold.clone(), "selected": self.selected.clone()}

    def load_state_dict(self, state: dict) -> "TANL":
        """Continue the stream of ``state`` (a ``state_dict`` of an engine built with the same hyperparameters and
        text bank)."""
        if tuple(state["score_memory"].shape) != tuple(self._score_memory.shape) or \
                state["selected"].numel() != self.num_negatives:
            raise UserError("the state is of an engine with another score_memory_length or num_negatives; load it "
                            "into one built with the same hyperparameters")
        self._id_memory.load_state_dict(state["id_memory"])
        self._ood_memory.load_state_dict(state["ood_memory"])
        self._score_memory = state["score_memory"].to(self.device).clone()
        self._score_count, self._score_head = int(state["score_count"]), int(state["score_head"])
        self._threshold = state["threshold"].clone()
        self.selected = state["selected"].to(self.device).clone()
        self._admitted = torch.zeros(2, 0, dtype=torch.bool, device=self.device)
        return self

    @property
    def memories(self) -> tuple[ActivationMemory, ActivationMemory]:
        """The (ID, OOD) activation memories (read-only use: ``count``, ``mean()``, ``rows()``, ``chunk_sums()``)."""
        return self._id_memory, self._ood_memory

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def step(self, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score one test batch, then learn from it.

        Args:
            image_features: [B, D] L2-normalised image embeddings (any float dtype, any device: moved to the
                engine's device and float32; rows off unit norm are normalised, with one warning per engine).

        Returns:
            pred: [B] LongTensor, argmax over the ID classes.
            score: [B] float32, higher = more in-distribution (ID share of the softmax, in (0, 1)).
        """
        features, norms = batch_rows(image_features, self.id_text)
        logits = self._logits(features)
        # The one host read before the confident-row counts: the extremes of the batch's norms (the L2 policy) and of
        # its logits (they bound the span of any row of negatives: float32 or float64 exponentials).
        low, high, bottom, top = torch.stack([*torch.aminmax(norms), *torch.aminmax(logits)]).tolist()
        checked = settled_rows("image_features", features, norms, low, high, owner=self)
        if checked is not features:  # normalised for the caller (warned): its logits again
            return self.step_logits(checked, self._logits(checked))
        return self.step_logits(features, logits, float32_exponentials=top - bottom < FLOAT32_EXPONENT_RANGE)

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        """[B, C + N] = (logit_scale * features) @ [ID | corpus].T, in the reused buffer."""
        if self._text is None:
            self._text = torch.cat([self.id_text, self.corpus_text])
        return torch.matmul(self.logit_scale * features, self._text.T, out=self._workspace("logits", features.shape[0]))

    @torch.no_grad()
    def step_logits(self, features: torch.Tensor, logits: torch.Tensor, softmax=None, *,
                    float32_exponentials: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` on shared work (neither argument is written).

        Args:
            features: [B, D] image embeddings as ``step`` checks them.
            logits: [B, C + N] = (logit_scale * features) @ [ID | corpus].T.
            softmax: ``torch.softmax(logits, 1)``, or a zero-argument function returning it (computed here, in a
                reused buffer, when None).
            float32_exponentials: whether every row of negatives' logits spans less than ``FLOAT32_EXPONENT_RANGE``
                (a bound will do: the batch's logits' span), when the caller has read it; None reads it here (one
                more host sync).
        """
        pred = logits[:, : self.num_classes].argmax(dim=1)
        if float32_exponentials is None:
            bottom, top = torch.stack(torch.aminmax(logits)).tolist()
            float32_exponentials = top - bottom < FLOAT32_EXPONENT_RANGE

        id_mean, ood_mean = self._id_memory.mean(), self._ood_memory.mean()
        id_lse = id_logsumexp(logits[:, : self.num_classes])  # shared by both scores of this batch
        memory_score = self._memory_score(features, logits, self._select(ood_mean - id_mean), id_lse,
                                          float32_exponentials)
        self._remember_scores(memory_score)
        self._threshold = threshold = otsu_threshold(self._score_memory[: self._score_count], self._grid)
        # [2]: t + gap * (1 - t) and t + gap * (0 - t) = t - gap * t, in float64 as the official code
        wide = threshold.double()
        upper, lower = (wide + self.gap * (self._bound_targets - wide)).float()
        self._admitted = confident = torch.stack([memory_score > upper, memory_score < lower])  # [2, B]: ID, OOD

        # The second host read: the confident rows go from the batch's softmax straight into the memories.
        counts = confident.sum(1).tolist()
        first = torch.argsort(confident, dim=1, descending=True, stable=True)  # in batch order
        id_rows, ood_rows = first[0, : counts[0]], first[1, : counts[1]]
        if softmax is None:
            softmax = torch.softmax(logits, 1, out=self._workspace("softmax", logits.shape[0]))
        elif callable(softmax):
            softmax = softmax()
        # the corpus part of the softmax, only read; the same tensor for every engine of a Lockstep
        id_sum = self._id_memory.push_selected(softmax, id_rows, self.num_classes)
        ood_sum = self._ood_memory.push_selected(softmax, ood_rows, self.num_classes)
        blended_id = self._blend(id_mean, id_sum, id_rows.numel())
        blended_ood = self._blend(ood_mean, ood_sum, ood_rows.numel())
        self.selected = self._select(blended_ood - blended_id)
        return pred, self._returned_score(features, logits, self.selected, id_lse, float32_exponentials)

    # ------------------------------------------------------------------ pieces
    def _initial_activations(self, rows: str, keep: torch.Tensor) -> torch.Tensor:
        """[len(keep), N] activations of the ``keep`` rows of the ID texts (``rows="id"``) or noise features."""
        return self._activations((self.id_text if rows == "id" else self.noise_features).index_select(0, keep))

    def _initial_scores(self) -> torch.Tensor:
        """[C + K] scores of the ID texts and the noise features under the first selection (the score memory's
        start)."""
        pseudo_images = self.logit_scale * torch.cat([self.id_text, self.noise_features])
        return activation_aware_score(pseudo_images @ self.id_text.T,  # the columns scoring needs, only
                                      pseudo_images @ self.corpus_text.index_select(0, self.selected).T,
                                      self.score_step).float()

    def _memory_score(self, features, logits, selected, id_lse, float32_exponentials) -> torch.Tensor:
        """The score that updates the threshold and picks the confident rows (before this batch's selection)."""
        return self._score(logits, selected, id_lse, float32_exponentials)

    def _returned_score(self, features, logits, selected, id_lse, float32_exponentials) -> torch.Tensor:
        """The score ``step`` returns (under this batch's selection)."""
        return self._score(logits, selected, id_lse, float32_exponentials)

    def _activations(self, features: torch.Tensor) -> torch.Tensor:
        """[R, D] embeddings -> [R, N]: the corpus part of the float32 softmax over [ID | whole corpus]."""
        scaled = self.logit_scale * features
        logits = torch.cat([scaled @ self.id_text.T, scaled @ self.corpus_text.T], dim=1)
        return torch.softmax(logits, 1)[:, self.num_classes:]

    def _workspace(self, name: str, rows: int) -> torch.Tensor:
        """A reusable [rows, C + N] float32 buffer for ``step``'s logits and softmax (``core.workspace``)."""
        return self._workspaces.get(name, rows, self.num_classes + self.corpus_size, device=self.device)

    def _select(self, preference: torch.Tensor) -> torch.Tensor:
        """Top-M corpus indices of ``preference`` [N], strongest first."""
        return torch.topk(preference, self.num_negatives, sorted=True).indices

    def _score(self, logits: torch.Tensor, selected: torch.Tensor, id_lse: torch.Tensor | None = None,
               float32_exponentials: bool | None = None) -> torch.Tensor:
        """Activation-aware score [R] (float32) of [R, C + N] logits under the ranked negatives ``selected``."""
        id_logits = logits[:, : self.num_classes]
        negative_logits = gather_columns(logits[:, self.num_classes:], selected, self._workspaces, "negatives")
        return activation_aware_score(id_logits, negative_logits, self.score_step, id_lse=id_lse,
                                      workspaces=self._workspaces, float32_exponentials=float32_exponentials).float()

    def _blend(self, memory_mean: torch.Tensor, batch_sum: torch.Tensor, batch_count: int) -> torch.Tensor:
        """alpha * memory mean + (1 - alpha) * batch mean; the memory mean alone when the batch has no rows."""
        if batch_count == 0:
            return memory_mean
        return self.alpha * memory_mean + (1 - self.alpha) * (batch_sum / batch_count)

    def _remember_scores(self, scores: torch.Tensor) -> None:
        """Append to the score memory (a ring of the newest ``score_memory_length`` scores)."""
        scores = scores[-self.score_memory_length:]
        head, size = self._score_head, scores.shape[0]
        room = min(size, self.score_memory_length - head)  # up to the end of the ring, the rest from its start
        self._score_memory[head:head + room].copy_(scores[:room])
        if size > room:
            self._score_memory[: size - room].copy_(scores[room:])
        self._score_head = (head + size) % self.score_memory_length
        self._score_count = min(self._score_count + scores.shape[0], self.score_memory_length)
