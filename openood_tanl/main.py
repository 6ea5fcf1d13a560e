"""``python -m openood_tanl.main``: OpenOOD's ``main.py`` pipeline with our names (``openood_tanl.openood.main``)."""
import sys

from .openood.main import main

if __name__ == "__main__":
    sys.exit(main())
