import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "access"))
from appdb import *  # noqa: F403  (shared app-database fixtures, tests/access/appdb.py)
