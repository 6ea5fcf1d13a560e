import sys
from pathlib import Path

# tests import their slow reference helpers by module name
sys.path.insert(0, str(Path(__file__).parent))
