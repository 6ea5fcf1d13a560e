"""In-distribution class-name sets (built-in lists equal to the official code's): see ``classnames.classnames``."""
from .classnames import (
                         BUILTIN_CLASS_SETS,
                         IMAGENET_DISAMBIGUATION,
                         ClassNameWarning,
                         class_names,
                         class_names_sha256,
                         imagenet200_indices,
                         imagenet200_wnids,
)

__all__ = ["BUILTIN_CLASS_SETS", "IMAGENET_DISAMBIGUATION", "ClassNameWarning", "class_names", "class_names_sha256",
           "imagenet200_indices", "imagenet200_wnids"]
