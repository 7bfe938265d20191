"""declarations/schema.json still says what Apple's declarative YAML says.

schema.json (scripts/gen_declarations.py) is committed and every other declaration test runs on
it, so a clone stands alone. Only this module reads Apple's YAML, from
../shared/apple-device-management beside the repository: it regenerates the file in memory with
the script's own build and render and compares, then reads the YAML itself to check that every
declaration file became a Type that means what the file says. Without the YAML it skips,
saying where it looked; under CI=true it fails instead (tests/test_schema_matches_apple.py).
"""

from pathlib import Path

import pytest
import yaml

from tests.conftest import IN_CI
from tests.test_schema_matches_apple import (
    assert_keys_say_what_apple_says,
    introduced,
    load_script,
    require_schema,
)

gen_declarations = load_script("gen_declarations")
DECLARATIONS = "declarative/declarations"
# Not Types: the keys every declaration has (and the reasons), and the credential documents
# an asset's data may be (schema.json keeps those under "credentials").
NOT_TYPES = ("declarationbase.yaml",)
CREDENTIALS = "assets/credentials"


@pytest.fixture(scope="module")
def apple() -> Path:
    return require_schema(gen_declarations.DEFAULT_SCHEMA, IN_CI, DECLARATIONS)


def declaration_files(apple: Path) -> list[Path]:
    folder = apple / DECLARATIONS
    return [
        path
        for path in sorted(folder.rglob("*.yaml"))
        if path.name not in NOT_TYPES
        and not path.relative_to(folder).as_posix().startswith(CREDENTIALS)
    ]


def test_schema_json_is_what_gen_declarations_makes_of_the_yaml(apple):
    committed = gen_declarations.TARGET.read_text(encoding="utf-8")
    regenerated = gen_declarations.render(gen_declarations.build(apple))
    assert regenerated == committed, "run scripts/gen_declarations.py"


def test_every_declaration_file_is_a_type_that_means_what_it_says(apple):
    """Read independently of the generator: each file's Type, keys, types, required keys,
    allowed values and OS versions."""
    declarations = gen_declarations.build(apple)["declarations"]
    files = declaration_files(apple)
    assert len(files) == len(declarations) == 38
    seen = {}
    for path in files:
        raw = yaml.safe_load(path.read_text())
        name = raw["payload"]["declarationtype"]
        assert name not in seen, f"{path.name} and {seen.get(name)} both define {name}"
        seen[name] = path.name
        assert name in declarations, f"{path.relative_to(apple)} produced no Type"
        made = declarations[name]
        assert made["source_file"] == path.relative_to(apple).as_posix()
        assert made["title"] == raw["title"], name
        assert made["kind"] == name.split(".")[2], name
        assert_keys_say_what_apple_says(name, raw.get("payloadkeys") or [], made["keys"])
        for platform, info in raw["payload"]["supportedOS"].items():
            support = made["platforms"][platform]
            assert support["introduced"] == introduced(info), f"{name} on {platform}"
            if support["introduced"] is not None:
                assert support["enrollments"] == info.get("allowed-enrollments", []), platform
    assert sorted(seen) == sorted(declarations)


def test_credential_documents_and_reasons_come_from_their_files(apple):
    built = gen_declarations.build(apple)
    folder = apple / DECLARATIONS / CREDENTIALS
    documents = {
        yaml.safe_load(path.read_text())["payload"]["credentialtype"]
        for path in folder.glob("*.yaml")
    }
    assert sorted(documents) == sorted(built["credentials"]) and len(documents) == 4
    base = yaml.safe_load((apple / DECLARATIONS / "declarationbase.yaml").read_text())
    assert sorted(built["reasons"]) == sorted(reason["value"] for reason in base["reasons"])


def test_without_the_yaml_it_skips_naming_the_declarations_folder_or_fails_under_ci(tmp_path):
    expected = str(tmp_path.resolve() / DECLARATIONS)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_schema(tmp_path, in_ci=False, folder=DECLARATIONS)
    assert expected in str(skipped.value)
    with pytest.raises(pytest.fail.Exception) as failed:
        require_schema(tmp_path, in_ci=True, folder=DECLARATIONS)
    assert str(failed.value).startswith("CI=true but ") and expected in str(failed.value)
    # The commands' folder alone is not the declarative schema.
    (tmp_path / "mdm/commands").mkdir(parents=True)
    with pytest.raises(pytest.skip.Exception):
        require_schema(tmp_path, in_ci=False, folder=DECLARATIONS)
