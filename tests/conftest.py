import pathlib
import sys

# Make tests/oracle.py importable as `oracle` from every test module.
sys.path.insert(0, str(pathlib.Path(__file__).parent))
