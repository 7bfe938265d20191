"""enrollment/dep_skip_keys.py (scripts/gen_dep_skip_keys.py) still says what Apple's YAML says.

Like test_schema_matches_apple.py: only this module reads ../shared/apple-device-management;
without it the test skips, saying where it looked (under CI=true it fails)."""

import importlib.util

from enrollment.dep_skip_keys import SKIP_KEYS
from tests.conftest import IN_CI
from tests.test_schema_matches_apple import REPO, require_schema

spec = importlib.util.spec_from_file_location("gen", REPO / "scripts" / "gen_dep_skip_keys.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)


def test_dep_skip_keys_is_what_the_generator_makes_of_the_yaml():
    apple = require_schema(gen.DEFAULT_SCHEMA, IN_CI)
    committed = gen.TARGET.read_text(encoding="utf-8")
    assert gen.render(gen.skip_keys(apple)) == committed, "run scripts/gen_dep_skip_keys.py"
    assert {"AppleID", "Siri", "Location", "Restore"} <= SKIP_KEYS
