import sys
from pathlib import Path

# tests import their slow reference helpers by module name
sys.path.insert(0, str(Path(__file__).parent))

import os

# Tests never reach the network: open_clip's weight downloads fail at once instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
