"""The data the project generates from Apple's schema still says what Apple's YAML says.

commands/catalog/schema.json (scripts/gen_catalog.py) and commands/catalog/device_queries.py
(scripts/gen_device_queries.py) are committed, and every other test runs on them, so a clone
stands alone. Only this module reads Apple's YAML, from ../shared/apple-device-management
beside the repository: it regenerates both files in memory with the scripts' own functions and
compares. Without the YAML it skips, saying where it looked; under CI=true it fails instead.
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.conftest import IN_CI

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_catalog = load_script("gen_catalog")
gen_device_queries = load_script("gen_device_queries")


def require_schema(root: Path, in_ci: bool, folder: str = "mdm/commands") -> Path:
    """Apple's schema root, or a skip (a failure under CI) naming the absolute path looked at:
    `folder` under it, the part of the schema the caller reads."""
    expected = root.resolve() / folder
    if expected.is_dir():
        return root.resolve()
    reason = f"Apple's YAML schema is expected at {expected} (shared/ beside the repository)"
    if in_ci:
        pytest.fail("CI=true but " + reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def apple() -> Path:
    return require_schema(gen_catalog.DEFAULT_SCHEMA, IN_CI)


def test_schema_json_is_what_gen_catalog_makes_of_the_yaml(apple):
    committed = gen_catalog.TARGET.read_text(encoding="utf-8")
    assert gen_catalog.render(gen_catalog.build(apple)) == committed, "run scripts/gen_catalog.py"


def test_device_queries_is_what_gen_device_queries_makes_of_the_yaml(apple):
    committed = gen_device_queries.TARGET.read_text(encoding="utf-8")
    regenerated = gen_device_queries.render(gen_device_queries.query_rights(apple))
    assert regenerated == committed, "run scripts/gen_device_queries.py"


def introduced(info: dict) -> str | None:
    return None if info["introduced"] == "n/a" else info["introduced"]


def assert_keys_say_what_apple_says(where: str, yaml_keys: list[dict], keys: list[dict]) -> None:
    assert [raw["key"] for raw in yaml_keys] == [key["name"] for key in keys], where
    for raw, key in zip(yaml_keys, keys, strict=True):
        at = f"{where}.{raw['key']}"
        assert key["type"] == raw["type"].strip("<>"), at
        assert key["required"] == (raw.get("presence") == "required"), at
        assert key["allowed"] == raw.get("rangelist"), at
        for platform, info in (raw.get("supportedOS") or {}).items():
            if isinstance(info, dict) and "introduced" in info:
                assert key["platforms"][platform] == introduced(info), f"{at} on {platform}"
        assert_keys_say_what_apple_says(at, raw.get("subkeys") or [], key["subkeys"])


def test_the_generated_catalog_means_what_the_yaml_says(apple):
    """Read independently of the generator: every command, key, type, rule and OS version."""
    schema = gen_catalog.build(apple)
    seen = set()
    for path in sorted((apple / "mdm/commands").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        rt = raw["payload"]["requesttype"]
        seen.add(rt)
        assert schema[rt]["title"] == raw["title"], rt
        assert_keys_say_what_apple_says(rt, raw.get("payloadkeys") or [], schema[rt]["keys"])
        for platform, info in raw["payload"]["supportedOS"].items():
            assert schema[rt]["platforms"][platform]["introduced"] == introduced(info), rt
    assert sorted(seen) == sorted(schema)


def test_without_the_yaml_it_skips_naming_the_path_or_fails_under_ci(tmp_path):
    """Runs everywhere: the rule that keeps this module from skipping silently in CI."""
    expected = str(tmp_path.resolve() / "mdm/commands")
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_schema(tmp_path, in_ci=False)
    assert expected in str(skipped.value)
    with pytest.raises(pytest.fail.Exception) as failed:
        require_schema(tmp_path, in_ci=True)
    assert str(failed.value).startswith("CI=true but ") and expected in str(failed.value)
