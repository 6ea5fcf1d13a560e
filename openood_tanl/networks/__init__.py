"""The open_clip adapter: a CLIP network carrying its text bank (``create_network``, ``plan_text_bank``)."""
from .clip_network import CLIPNetwork, TextBankPlan, create_network, plan_text_bank
from .noise import noise_images

__all__ = ["CLIPNetwork", "TextBankPlan", "create_network", "plan_text_bank", "noise_images"]
