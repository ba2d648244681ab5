"""Count what the property tests' inputs do to the spec loader and `bundle validate`.

Draws 1,000 inputs per property from the property tests' strategies and settings
(derandomized), all before running any of them, so the inputs do not depend on the code
under test. Then it runs every input and, instead of stopping at the first traceback,
counts each outcome: loaded, our typed error, or a raw traceback by exception type.
Run it against another checkout's code to compare, e.g. the code before a fix:

    uv run python bench/fuzz.py
    PYTHONPATH=<old checkout>/plugins uv run python bench/fuzz.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bundle import test_validate_properties as bundle_properties
from tests.fuzzing import HOSTILE
from tests.spec import test_spec_properties as spec_properties

from bundle_promotion.bundle.config.load import validate
from bundle_promotion.bundle.config.outline import read_outline
from bundle_promotion.errors import BundleConfigError, SpecError
from bundle_promotion.spec import load_spec


def drawn(strategy: st.SearchStrategy[Any]) -> list[Any]:
    inputs: list[Any] = []

    @HOSTILE
    @given(value=strategy)
    def draw(value: Any) -> None:
        inputs.append(value)

    draw()
    return inputs


def outcomes_of(inputs: list[Any], run: Callable[[Any], str]) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    for value in inputs:
        try:
            outcomes[run(value)] += 1
        except (SpecError, BundleConfigError):
            outcomes["typed error"] += 1
        except Exception as error:  # what we count: any traceback that is not ours
            outcomes[f"traceback: {type(error).__name__}"] += 1
    return outcomes


def spec_runs(folder: Path) -> dict[str, Counter[str]]:
    path = folder / "spec.yaml"

    def from_document(document: Any) -> str:
        path.write_text(yaml.safe_dump(document, allow_unicode=True))
        load_spec(path)
        return "loaded"

    def from_bytes(data: bytes) -> str:
        path.write_bytes(data)
        load_spec(path)
        return "loaded"

    return {
        "spec loader, spec-shaped documents": outcomes_of(
            drawn(spec_properties.spec_documents()), from_document
        ),
        "spec loader, raw bytes": outcomes_of(
            drawn(spec_properties.raw_bytes(spec_properties.LOCAL_EXAMPLE_SPEC)), from_bytes
        ),
    }


def bundle_runs(bundle: Path) -> dict[str, Counter[str]]:
    def validated(target: str) -> str:
        errors = validate(bundle, target, current_user=bundle_properties.USER).errors
        read_outline(bundle)
        return "typed error" if errors else "valid"

    def from_documents(drawn_files: tuple[Any, Any, str]) -> str:
        root, included, target = drawn_files
        (bundle / "databricks.yml").write_text(yaml.safe_dump(root, allow_unicode=True))
        (bundle / "resources" / "extra.yml").write_text(yaml.safe_dump(included, allow_unicode=True))
        return validated(target)

    def from_bytes(data: bytes) -> str:
        (bundle / "databricks.yml").write_bytes(data)
        (bundle / "resources" / "extra.yml").write_text("")
        return validated("dev")

    documents = st.tuples(
        bundle_properties.root_document, bundle_properties.include_document, bundle_properties.targets
    )
    root_bytes = (bundle_properties.EXAMPLE_BUNDLE / "databricks.yml").read_bytes()
    return {
        "bundle validate, bundle-shaped configs": outcomes_of(drawn(documents), from_documents),
        "bundle validate, raw bytes": outcomes_of(drawn(bundle_properties.raw_bytes(root_bytes)), from_bytes),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        shutil.copytree(spec_properties.EXAMPLE_BUNDLE, folder / "bundle")
        subprocess.run(["git", "init", "--quiet", str(folder / "bundle")], check=True)
        (folder / "bundle" / "resources").mkdir(exist_ok=True)
        results = {**spec_runs(folder), **bundle_runs(folder / "bundle")}
    for name, outcomes in results.items():
        tracebacks = sum(count for outcome, count in outcomes.items() if outcome.startswith("traceback"))
        print(f"{name}: {sum(outcomes.values())} inputs, {tracebacks} tracebacks")
        for outcome, count in outcomes.most_common():
            print(f"    {count:5d}  {outcome}")


if __name__ == "__main__":
    main()
