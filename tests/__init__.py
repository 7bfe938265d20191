"""The tests (a package, so that tests/ is not on sys.path: its simulator.py would hide the
simulator package)."""
