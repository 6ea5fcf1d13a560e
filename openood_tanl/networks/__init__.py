"""The open_clip adapter: a CLIP network carrying its text bank (``create_network``, ``plan_text_bank``, both from
``TextBankSettings``)."""
from .clip_network import CLIPNetwork, TextBankPlan, build_network, create_network, plan_text_bank
from .noise import noise_images
from .settings import TextBankSettings

__all__ = ["CLIPNetwork", "TextBankPlan", "TextBankSettings", "build_network", "create_network", "plan_text_bank",
           "noise_images"]
