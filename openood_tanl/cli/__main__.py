"""``python -m openood_tanl.cli`` (e.g. under ``torchrun``): the ``openood-tanl`` command."""
import sys

from .core import main

sys.exit(main())
