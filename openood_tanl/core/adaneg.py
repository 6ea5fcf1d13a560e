"""AdaNeg (Zhang & Zhang, NeurIPS 2024): adaptive negative proxies built from a memory of test images.

Pure torch: no OpenOOD and no open_clip import. Everything runs on the device of ``id_text`` and in float32
(float16/bfloat16 inputs are upcast). This is the behaviour of the official ``ttapromptnoadagap`` postprocessor
(``TTAPromptPostprocessor_noadagap`` in YBZh/OpenOOD-VLM), vectorised.

The algorithm, per test batch (P = C + M proxies: the C ID class texts, then the M NegLabel negatives):

1. Text score: the grouped NegLabel score of the image against the texts (negatives cut into groups; per group
   the ID share of the softmax over [ID | group]; mean over groups).
2. Memory update, before scoring the batch: an image whose text score is above
   ``threshold + gap * (1 - threshold)`` is cached under its arg-max ID class; one below
   ``threshold - gap * threshold`` under its arg-max negative label. Each proxy holds its text plus at most
   ``memory_length - 1`` images; once full, a new image replaces the held image of highest entropy if its own
   entropy is strictly lower (entropy of the softmax over the ID logits, resp. over the negative logits).
3. Memory proxies: each proxy becomes the normalised sum of its text and its cached images (or, with
   ``sample_adaptive``, of each of them weighted by ``exp(-sharpness * (1 - cos(image, cached)))``).
4. Score = memory score + ``mix_weight`` * text score (``score_mode='combine'``), where the memory score is the
   same grouped NegLabel score against the memory proxies. Higher = more in-distribution.
"""
from __future__ import annotations

import torch

from .engine import OfficialName, check_bank_columns
from .errors import UserError
from .scoring import grouped_id_share, negative_groups
from .validation import (
    as_rows,
    check_batch,
    check_flag,
    check_hyperparameters,
    check_int,
    check_logit_scale,
    check_real,
    check_seed,
    check_unit,
)
from .validation import check_same_dim as _check_same_dim
from .workspace import Workspaces

__all__ = ["AdaNeg", "OFFICIAL_NAMES", "SCORE_MODES", "HYPERPARAMETER_CHECKS"]

#: Our hyperparameter -> where it lives in the official ``TTAPromptPostprocessor_noadagap`` (``postprocessor_args``).
OFFICIAL_NAMES = {
    "threshold": OfficialName("thres"),
    "gap": OfficialName("gap"),
    "memory_length": OfficialName("memleng"),
    "mix_weight": OfficialName("lambdaval"),
    "num_groups": OfficialName("group_num"),
    "shuffle_groups": OfficialName("random_permute"),
    "sample_adaptive": OfficialName("samada"),
    "sharpness": OfficialName("beta", "applied as int(beta): the shipped 5.5 runs as 5"),
    "score_mode": OfficialName("in_score"),
    "seed": OfficialName(None, "SEED, hard-coded 0 in postprocess"),
    "replace_by_entropy": OfficialName(None, "True = the code as written; False = its float16 run, where "
                                             "entropies are NaN"),
}

#: Accepted ``score_mode`` values (the official ``in_score`` strings) and what they return.
SCORE_MODES = {
    "combine": "memory score + mix_weight * text score",
    "adaonly": "memory score",
    "vanillaonly": "text score",
    "multiply": "memory score * text score",
}



def _check_score_mode(name: str, value) -> str:
    if value not in SCORE_MODES:
        raise UserError(f"{name} must be one of {sorted(SCORE_MODES)}, got {value!r}")
    return value


#: Each hyperparameter's check (``num_groups`` is also bounded by the number of negatives).
HYPERPARAMETER_CHECKS = {
    "threshold": check_unit,
    "gap": check_unit,
    "memory_length": lambda name, value: check_int(name, value, 1),
    "mix_weight": lambda name, value: check_real(name, value, 0.0),
    "num_groups": lambda name, value: check_int(name, value, 1),
    "shuffle_groups": check_flag,
    "sample_adaptive": check_flag,
    "sharpness": lambda name, value: check_real(name, value, 0.0),
    "score_mode": _check_score_mode,
    "replace_by_entropy": check_flag,
    "seed": lambda name, value: check_seed(value),
}

_ENTROPY_EPS = 1e-8  # inside the log of the official entropy: -(p * log(p + 1e-8)).sum()


class AdaNeg:
    """Adaptive-negative-proxy scorer for CLIP-like embeddings (official ``ttapromptnoadagap``).

    Args:
        id_text: [C, D] L2-normalised ID class text embeddings.
        negative_text: [M, D] L2-normalised negative-label text embeddings, already selected (NegLabel).
        logit_scale: CLIP's temperature multiplier (``logit_scale.exp()``, 100 for OpenAI CLIP).
        bank_columns: [C + M] the columns of a text bank's [ID | corpus] logits that [ID | negatives] are (the
            ``Engine`` contract); None: the negatives are the bank's whole corpus.
        threshold: middle point of the text score that splits ID from OOD (official ``thres``; 0.5).
        gap: g; an image is cached as ID when its text score > t + g (1 - t), as OOD when < t - g t
            (official ``gap``; 0.5 -> 0.75 / 0.25).
        memory_length: L (official ``memleng``; 10). A proxy holds its text and at most L - 1 images: the
            official memory has 1 + L slots, the text in slot 0, but its fill index stops at L, so the last slot
            stays empty (zero) for ever.
        mix_weight: lambda (official ``lambdaval``; 0.1). Weight of the *text* score in the 'combine' score, and
            weight of the *memory* softmax when it is added to the text softmax for the prediction.
        num_groups: negatives are cut into this many equal groups for the grouped NegLabel score (official
            ``group_num``; 5); the last ``M % num_groups`` negatives take no part in the scores (they still
            receive images in the memory).
        shuffle_groups: shuffle the kept negatives before grouping (official ``random_permute``; True).
        sample_adaptive: weight the cached images by their similarity to each test image (official ``samada``;
            False in the shipped ImageNet "final results" run) instead of a plain sum.
        sharpness: beta of the sample-adaptive weights ``exp(-beta (1 - cos))``; only used when
            ``sample_adaptive``. The official code truncates its ``beta`` to an int, so pass 5 for its 5.5.
        score_mode: one of ``SCORE_MODES`` (official ``in_score``; 'combine').
        replace_by_entropy: when a proxy is full, replace its most uncertain image by a more certain newcomer
            (the official code, True); False keeps the first images (what its float16 run does, see below).
        seed: seeds the shuffle into groups (the official code re-seeds the global RNG with 0 each batch, so
            seed=0 gives its groups).

    Official defaults. The class has no YAML of its own: the shipped script (scripts/ood/adaneg/imagenet.sh)
    layers command-line values over configs/postprocessors/mcm.yml. Our defaults are those of its ImageNet
    "final results" run: thres 0.5, gap 0.5, memleng 10, lambdaval 0.1, group_num 5, random_permute True,
    samada False, beta 5.5, in_score 'combine'. (mcm.yml alone has thres 0.8, gap 0, memleng 30, lambdaval 1,
    group_num 1, samada True and in_score 'sum', which this class rejects with NotImplementedError.)

    Differences from the official code, all deliberate:
        * Ties in the replacement. Officially the slot evicted is the last of the max-entropy slots in sort
          order; here, among images of equal entropy the older one is kept. Only exact float ties differ.
        * Precision. Computation is float32 here; the official net is OpenAI CLIP built in float16, so its
          postprocess runs in float16 on the GPU. There the softmax underflows to exact zeros, the
          ``log(p + 1e-8)`` of the entropy is ``log(0)`` (1e-8 is below float16's resolution) and entropies are
          NaN, so no replacement ever fires and each proxy keeps its *first* L - 1 images (seen with float16
          tensors on CPU). ``replace_by_entropy=False`` reproduces that (keep-first) behaviour; scores still
          differ from a float16 run by its rounding.
        * The official ``tau``, the training-set feature caches of ``setup`` (``setup_flag`` is False) and the
          ``text_features_unselected`` bank are never used by this path and have no counterpart here.

    ``step`` returns, for a batch of image embeddings, the ID prediction and the score (higher = more
    in-distribution); the memory learns from the batch *before* the batch is scored, as officially.

    Learned state (valid after ``reset``/``step``, read-only): ``memory_counts`` ([C + M] images held per proxy),
    ``memory_fill`` ((ID, OOD) images held), ``admitted`` ([2, B] bool: the last batch's rows offered to the ID
    and to the negative proxies' memories) and ``memory_arrivals`` (where in the stream each held image came from).
    """

    hyperparameter_checks = HYPERPARAMETER_CHECKS
    learned_state = ("memory_counts", "memory_fill", "admitted", "memory_arrivals")
    official_names = OFFICIAL_NAMES

    def __init__(
        self,
        id_text: torch.Tensor,
        negative_text: torch.Tensor,
        logit_scale: float = 100.0,
        bank_columns: torch.Tensor | None = None,
        *,
        threshold: float = 0.5,
        gap: float = 0.5,
        memory_length: int = 10,
        mix_weight: float = 0.1,
        num_groups: int = 5,
        shuffle_groups: bool = True,
        sample_adaptive: bool = False,
        sharpness: float = 5.0,
        score_mode: str = "combine",
        replace_by_entropy: bool = True,
        seed: int = 0,
    ):
        _check_same_dim(id_text, negative_text)
        self.id_text = as_rows("id_text", id_text, owner=self)
        device = self.id_text.device
        self.negative_text = as_rows("negative_text", negative_text, device, owner=self)
        for name, rows in (("id_text", self.id_text), ("negative_text", self.negative_text)):
            if rows.shape[0] == 0:
                raise UserError(f"{name} is empty; it needs at least one row")
        self.logit_scale = check_logit_scale(logit_scale)
        self.num_groups = check_int("num_groups", num_groups, 1, self.negative_text.shape[0],
                                    hint=f"there are {self.negative_text.shape[0]} negatives")
        values = check_hyperparameters(self.hyperparameter_checks, dict(
            threshold=threshold, gap=gap, memory_length=memory_length, mix_weight=mix_weight, num_groups=num_groups,
            shuffle_groups=shuffle_groups, sample_adaptive=sample_adaptive, sharpness=sharpness,
            score_mode=score_mode, replace_by_entropy=replace_by_entropy, seed=seed), "AdaNeg")
        self.threshold, self.gap, self.memory_length = values["threshold"], values["gap"], values["memory_length"]
        self.mix_weight = values["mix_weight"]
        self.shuffle_groups, self.sample_adaptive = values["shuffle_groups"], values["sample_adaptive"]
        self.sharpness, self.score_mode = values["sharpness"], values["score_mode"]
        self.replace_by_entropy, self.seed = values["replace_by_entropy"], values["seed"]

        # [P, D] with P = C + M: every logit against the ID classes then the negatives comes from one matmul.
        self._text = torch.cat([self.id_text, self.negative_text])
        self.bank_columns = check_bank_columns(bank_columns, self._text.shape[0], "AdaNeg")
        self._text_norm = self._text.norm(dim=1)  # [P]; the official memory proxies renormalise the text row
        # [num_groups, M // num_groups] column indices into the [P] logits
        groups = negative_groups(self.negative_text.shape[0], self.num_groups, self.seed, self.shuffle_groups)
        self._groups = (groups + self.num_classes).to(device)
        self._workspaces = Workspaces()
        self.reset()

    # ------------------------------------------------------------------ sizes
    @property
    def device(self) -> torch.device:
        return self._text.device

    @property
    def num_classes(self) -> int:
        return self.id_text.shape[0]

    @property
    def num_proxies(self) -> int:
        return self._text.shape[0]

    @property
    def capacity(self) -> int:
        """Images one proxy can hold: ``memory_length - 1`` (see the class docstring)."""
        return self.memory_length - 1

    # ------------------------------------------------------------------ state
    _STATE = ("_feat", "_proxy", "_entropy", "_arrival", "_sums", "_directions")

    def state_dict(self) -> dict:
        """The stream state (the held images and the proxies) as tensors and ints, torch's convention: ``torch.save``
        it, load it with ``weights_only=True``, and ``load_state_dict`` continues the stream bitwise."""
        return {**{name.lstrip("_"): getattr(self, name).clone() for name in self._STATE}, "arrivals": self._arrivals}

    def load_state_dict(self, state: dict) -> "AdaNeg":
        """Continue the stream of ``state`` (a ``state_dict`` of an engine built the same way)."""
        if tuple(state["sums"].shape) != tuple(self._text.shape):
            raise UserError(f"the state is of an engine with {tuple(state['sums'].shape)} proxies x dimensions, this "
                            f"one has {tuple(self._text.shape)}: load it into one built the same way")
        for name in self._STATE:
            setattr(self, name, state[name.lstrip("_")].to(self.device).clone())
        self._arrivals = int(state["arrivals"])
        self._adaptive_cache = None
        self._offered = 0
        return self

    def reset(self) -> "AdaNeg":
        """Empty every memory (official ``reset_memory``: each proxy back to its text alone)."""
        dim = self._text.shape[1]
        # The memory is a pool of held images, kept sorted by (proxy, entropy, arrival): rows of one proxy are
        # contiguous and best first. Only held images are stored, never the empty slots.
        self._feat = torch.empty(0, dim, dtype=torch.float32, device=self.device)
        self._proxy = torch.empty(0, dtype=torch.long, device=self.device)
        self._entropy = torch.empty(0, dtype=torch.float32, device=self.device)
        self._arrival = torch.empty(0, dtype=torch.long, device=self.device)
        self._arrivals = 0  # images seen since reset: the arrival stamp of the next one
        # Plain proxies: text + sum of held images per row, and its unit direction.
        self._sums = self._text.clone()
        self._directions = self._text / self._text_norm[:, None]
        self._adaptive_cache = None  # pair structure of the sample-adaptive proxies, rebuilt after each change
        self._offered: tuple[torch.Tensor, torch.Tensor] | int = 0  # the last batch's confident masks (or its size)
        return self

    @property
    def memory_counts(self) -> torch.Tensor:
        """[C + M] LongTensor: images held by each proxy (ID classes first, then negatives)."""
        return torch.bincount(self._proxy, minlength=self.num_proxies)

    @property
    def memory_fill(self) -> tuple[int, int]:
        """(ID, OOD) images held: by the ID class proxies and by the negative proxies."""
        counts = self.memory_counts
        return int(counts[: self.num_classes].sum()), int(counts[self.num_classes:].sum())

    @property
    def admitted(self) -> torch.Tensor:
        """[2, B] bool: the rows of the last batch offered to the memories of the ID class proxies (its confident
        ID rows) and of the negative proxies (its confident OOD rows); an offered image is kept only if it is among
        its proxy's best (``memory_arrivals`` says which are held). [2, 0] after ``reset``."""
        if isinstance(self._offered, int):
            return torch.zeros(2, self._offered, dtype=torch.bool, device=self.device)
        return torch.stack(self._offered)

    @property
    def memory_arrivals(self) -> torch.Tensor:
        """[n] LongTensor: for each held image, its position in the stream since ``reset`` (0-based), the ID
        proxies' images first (``memory_fill[0]`` of them), then the negative proxies'."""
        return self._arrival.clone()

    def memory_of(self, proxy: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Held images [n, D] of one proxy and their entropies [n], lowest entropy first."""
        rows = self._proxy == proxy
        return self._feat[rows], self._entropy[rows]

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def step(self, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Learn from one test batch, then score it.

        Args:
            image_features: [B, D] L2-normalised image embeddings (any float dtype, any device: moved to the
                engine's device and float32).

        Returns:
            pred: [B] LongTensor, arg-max over the ID classes of softmax(text logits) + mix_weight *
                softmax(memory logits), both softmaxes over all C + M proxies.
            score: [B] float32, higher = more in-distribution (in [0, 1 + mix_weight] for 'combine').
        """
        features = check_batch(image_features, self._text, owner=self)
        return self.step_logits(features, torch.matmul(self.logit_scale * features, self._text.T))

    @torch.no_grad()
    def step_logits(self, features: torch.Tensor, text_logits: torch.Tensor,
                    softmax=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` on shared work: ``features`` [B, D] as checked by ``step``, ``text_logits`` [B, P] =
        (logit_scale * features) @ [ID | negatives].T, only read."""
        text_score = self._grouped_score(text_logits)
        self._learn(features, text_logits, text_score.float())
        memory_logits = self._memory_logits(features, text_logits)  # [B, P]
        memory_score = self._grouped_score(memory_logits)

        if self.score_mode == "combine":
            score = memory_score + self.mix_weight * text_score
        elif self.score_mode == "adaonly":
            score = memory_score
        elif self.score_mode == "vanillaonly":
            score = text_score
        else:  # multiply
            score = memory_score * text_score
        rows, proxies = text_logits.shape
        probabilities = torch.softmax(text_logits, 1, out=self._workspaces.get("probabilities", rows, proxies,
                                                                              device=self.device))
        probabilities.add_(torch.softmax(memory_logits, 1, out=self._workspaces.get(
            "memory probabilities", rows, proxies, device=self.device)), alpha=self.mix_weight)
        pred = probabilities[:, : self.num_classes].argmax(dim=1)
        return pred, score.float()

    # ------------------------------------------------------------------ pieces
    def _grouped_score(self, logits: torch.Tensor) -> torch.Tensor:
        """Grouped NegLabel score [B] (float64) of [B, P] logits."""
        return grouped_id_share(logits, self.num_classes, self._groups, self._workspaces)

    def _learn(self, features: torch.Tensor, text_logits: torch.Tensor, text_score: torch.Tensor) -> None:
        """Cache the confident images of the batch (official per-sample loops, as one merge per batch)."""
        batch = features.shape[0]
        first_arrival = self._arrivals
        self._arrivals += batch
        self._offered = batch
        if self.capacity == 0:
            return  # memory_length 1: the official "full" test fires at once and nothing is ever stored
        upper = self.threshold + self.gap * (1 - self.threshold)
        lower = self.threshold - self.gap * self.threshold
        self._offered = offered = (text_score > upper, text_score < lower)  # read by traces only
        id_rows = offered[0].nonzero().squeeze(1)
        ood_rows = offered[1].nonzero().squeeze(1)
        if id_rows.numel() + ood_rows.numel() == 0:
            return
        id_proxy, id_entropy = _argmax_and_entropy(text_logits[id_rows, : self.num_classes])
        ood_proxy, ood_entropy = _argmax_and_entropy(text_logits[ood_rows, self.num_classes:])
        rows = torch.cat([id_rows, ood_rows])
        new_proxy = torch.cat([id_proxy, ood_proxy + self.num_classes])
        new_entropy = torch.cat([id_entropy, ood_entropy])
        # An image arriving in the batch at row i is the (first_arrival + i)-th since reset; ID and OOD images go
        # to disjoint proxies, so the official order (ID loop, then OOD loop) is the row order per proxy.
        self._merge(features[rows], new_proxy, new_entropy, rows + first_arrival)

    def _merge(self, feat: torch.Tensor, proxy: torch.Tensor, entropy: torch.Tensor, arrival: torch.Tensor) -> None:
        """Offer new images to the memory: each proxy keeps its ``capacity`` best of held + offered.

        Official rule, one image at a time: append while the proxy has room; when full, replace the held image of
        highest entropy if the newcomer's entropy is strictly lower. By induction the held set is always the
        ``capacity`` best of all images ever offered to the proxy, best = (lower entropy, then earlier arrival),
        so one sort per batch gives the same memory as the loop. Without ``replace_by_entropy``: the earliest.
        (Officially the newcomer is compared with all 1 + L slot entropies, the text slot's and the unused slot's
        zeros included; float32 entropies are >= 0, so that is the comparison with the worst held image.)
        """
        touched = torch.unique(proxy)
        feat = torch.cat([self._feat, feat])
        proxy = torch.cat([self._proxy, proxy])
        entropy = torch.cat([self._entropy, entropy])
        arrival = torch.cat([self._arrival, arrival])
        order = torch.argsort(arrival)  # arrivals are distinct
        if self.replace_by_entropy:
            order = order[torch.sort(entropy[order], stable=True).indices]
        order = order[torch.sort(proxy[order], stable=True).indices]
        proxy = proxy[order]
        _, counts = torch.unique_consecutive(proxy, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        position = torch.arange(proxy.numel(), device=self.device) - starts.repeat_interleave(counts)
        kept = position < self.capacity
        keep = order[kept]
        self._feat, self._proxy = feat[keep], proxy[kept]
        self._entropy, self._arrival = entropy[keep], arrival[keep]
        self._refresh(touched)

    def _refresh(self, touched: torch.Tensor) -> None:
        """Recompute the plain proxies of the touched rows from scratch (no running-sum drift)."""
        self._sums.index_copy_(0, touched, self._text.index_select(0, touched))
        rows = torch.isin(self._proxy, touched)
        self._sums.index_add_(0, self._proxy[rows], self._feat[rows])
        sums = self._sums.index_select(0, touched)
        self._directions.index_copy_(0, touched, sums / sums.norm(dim=1, keepdim=True))
        self._adaptive_cache = None

    def _memory_logits(self, features: torch.Tensor, text_logits: torch.Tensor) -> torch.Tensor:
        """[B, P] scaled cosine of each image with each memory proxy."""
        if not self.sample_adaptive:
            return torch.matmul(self.logit_scale * features, self._directions.T, out=self._workspaces.get(
                "memory logits", features.shape[0], self.num_proxies, device=self.device))
        return self._adaptive_logits(features, text_logits)

    def _adaptive_logits(self, features: torch.Tensor, text_logits: torch.Tensor) -> torch.Tensor:
        """Sample-adaptive proxies v_bp = sum_k w_bpk f_pk (k over the text and the held images of proxy p,
        w = exp(-beta (1 - x_b . f_pk))), logit = scale * x_b . v_bp / |v_bp|, without forming the [B, P, D] v.

        x . v = sum_k w_k s_k and |v|^2 = sum_{k,l} w_k w_l (f_k . f_l): the text-text, text-image and
        image-image terms are accumulated per proxy from per-image quantities ([B, N] with N held images).
        """
        beta = self.sharpness
        text_cos = text_logits / self.logit_scale  # [B, P]
        text_weight = torch.exp(-beta * (1 - text_cos))
        numerator = text_weight * text_cos
        squared_norm = (text_weight * self._text_norm).square()
        if self._proxy.numel():
            cache = self._adaptive_structure()
            cos = features @ self._feat.T  # [B, N]
            weight = torch.exp(-beta * (1 - cos))
            numerator.index_add_(1, self._proxy, weight * cos)
            cross = 2 * text_weight.index_select(1, self._proxy) * weight * cache["text_dot"]
            # image-image: partner q of image i is the q-th image of its proxy (a padding column past the end)
            padded = torch.cat([weight, weight.new_zeros(weight.shape[0], 1)], dim=1)
            pair = torch.zeros_like(weight)
            for q in range(cache["partners"].shape[1]):  # loop over memory slots (<= L - 1), not samples
                pair.addcmul_(padded.index_select(1, cache["partners"][:, q]), cache["gram"][:, q])
            squared_norm.index_add_(1, self._proxy, cross + weight * pair)
        return self.logit_scale * numerator / squared_norm.sqrt()

    def _adaptive_structure(self) -> dict:
        """Per held image: the index of each image of its proxy ([N, n_max], padded with N), their dot products
        with it ([N, n_max], zero padding) and its dot product with its proxy's text ([N])."""
        if self._adaptive_cache is None:
            count = self._proxy.numel()
            _, counts = torch.unique_consecutive(self._proxy, return_counts=True)
            starts = (torch.cumsum(counts, 0) - counts).repeat_interleave(counts)  # [N] first row of my proxy
            sizes = counts.repeat_interleave(counts)
            slots = torch.arange(int(counts.max()), device=self.device)
            valid = slots[None, :] < sizes[:, None]
            partners = (starts[:, None] + slots[None, :]).masked_fill_(~valid, count)  # N = the zero padding row
            padded = torch.cat([self._feat, self._feat.new_zeros(1, self._feat.shape[1])])
            gram = torch.stack([(self._feat * padded.index_select(0, partners[:, q])).sum(1)
                                for q in range(partners.shape[1])], dim=1)
            text_dot = (self._feat * self._text.index_select(0, self._proxy)).sum(1)
            self._adaptive_cache = {"partners": partners, "gram": gram, "text_dot": text_dot}
        return self._adaptive_cache


def _argmax_and_entropy(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[R, K] logits -> (arg-max [R], official entropy ``-(p * log(p + 1e-8)).sum()`` of softmax [R])."""
    probabilities = torch.softmax(logits, dim=1)
    entropy = -(probabilities * torch.log(probabilities + _ENTROPY_EPS)).sum(dim=1)
    return logits.argmax(dim=1), entropy
