"""The open_clip adapter: a CLIP network carrying its text bank (``create_network``)."""
from .clip_network import CLIPOODNetwork, create_network
from .noise import noise_images

__all__ = ["CLIPOODNetwork", "create_network", "noise_images"]
