"""Count what the property tests' inputs do to the spec loader and `bundle validate`.

Draws 1,000 inputs per property from the property tests' strategies and settings
(derandomized), all before running any of them. Then it runs every input and, instead of
stopping at the first traceback, counts each outcome: loaded, our typed error, or a raw
traceback by exception type.

Hypothesis mixes constants of the code under test into what it draws, so other code draws
other inputs. To compare two versions on the same inputs, draw once and replay the file:

    uv run python bench/fuzz.py --inputs /tmp/fuzz-inputs.pickle
    PYTHONPATH=<old checkout>/plugins uv run python bench/fuzz.py --inputs /tmp/fuzz-inputs.pickle
"""

from __future__ import annotations

import argparse
import pickle
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

from bundle_promotion.bundle.config.load import validate
from bundle_promotion.bundle.config.outline import read_outline
from bundle_promotion.errors import BundleConfigError, SpecError
from bundle_promotion.spec import load_spec
from tests.bundle import test_validate_properties as bundle_properties
from tests.fuzzing import HOSTILE
from tests.spec import test_spec_properties as spec_properties

SPEC_DOCUMENTS = "spec loader, spec-shaped documents"
SPEC_BYTES = "spec loader, raw bytes"
BUNDLE_DOCUMENTS = "bundle validate, bundle-shaped configs"
BUNDLE_BYTES = "bundle validate, raw bytes"


def drawn(strategy: st.SearchStrategy[Any]) -> list[Any]:
    inputs: list[Any] = []

    @HOSTILE
    @given(value=strategy)
    def draw(value: Any) -> None:
        inputs.append(value)

    draw()
    return inputs


def draw_all() -> dict[str, list[Any]]:
    bundle_documents = st.tuples(
        bundle_properties.root_document, bundle_properties.include_document, bundle_properties.targets
    )
    bundle_root = (bundle_properties.EXAMPLE_BUNDLE / "databricks.yml").read_bytes()
    return {
        SPEC_DOCUMENTS: drawn(spec_properties.spec_documents()),
        SPEC_BYTES: drawn(spec_properties.raw_bytes(spec_properties.LOCAL_EXAMPLE_SPEC)),
        BUNDLE_DOCUMENTS: drawn(bundle_documents),
        BUNDLE_BYTES: drawn(bundle_properties.raw_bytes(bundle_root)),
    }


def load_or_draw(saved: Path | None) -> dict[str, list[Any]]:
    if saved is not None and saved.exists():
        with saved.open("rb") as file:
            inputs: dict[str, list[Any]] = pickle.load(file)  # a file this script wrote
        return inputs
    inputs = draw_all()
    if saved is not None:
        saved.write_bytes(pickle.dumps(inputs))
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


def spec_runs(folder: Path, inputs: dict[str, list[Any]]) -> dict[str, Counter[str]]:
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
        SPEC_DOCUMENTS: outcomes_of(inputs[SPEC_DOCUMENTS], from_document),
        SPEC_BYTES: outcomes_of(inputs[SPEC_BYTES], from_bytes),
    }


def bundle_runs(bundle: Path, inputs: dict[str, list[Any]]) -> dict[str, Counter[str]]:
    def validated(target: str) -> str:
        errors = validate(bundle, target, current_user=bundle_properties.USER).errors
        read_outline(bundle)
        return "typed error" if errors else "valid"

    def from_documents(files: tuple[Any, Any, str]) -> str:
        root, included, target = files
        (bundle / "databricks.yml").write_text(yaml.safe_dump(root, allow_unicode=True))
        (bundle / "resources" / "extra.yml").write_text(yaml.safe_dump(included, allow_unicode=True))
        return validated(target)

    def from_bytes(data: bytes) -> str:
        (bundle / "databricks.yml").write_bytes(data)
        (bundle / "resources" / "extra.yml").write_text("")
        return validated("dev")

    return {
        BUNDLE_DOCUMENTS: outcomes_of(inputs[BUNDLE_DOCUMENTS], from_documents),
        BUNDLE_BYTES: outcomes_of(inputs[BUNDLE_BYTES], from_bytes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--inputs", type=Path, help="replay the inputs in this file; draw and save them if absent"
    )
    inputs = load_or_draw(parser.parse_args().inputs)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        shutil.copytree(spec_properties.EXAMPLE_BUNDLE, folder / "bundle")
        subprocess.run(["git", "init", "--quiet", str(folder / "bundle")], check=True)
        (folder / "bundle" / "resources").mkdir(exist_ok=True)
        results = {**spec_runs(folder, inputs), **bundle_runs(folder / "bundle", inputs)}
    for name, outcomes in results.items():
        tracebacks = sum(count for outcome, count in outcomes.items() if outcome.startswith("traceback"))
        print(f"{name}: {sum(outcomes.values())} inputs, {tracebacks} tracebacks")
        for outcome, count in outcomes.most_common():
            print(f"    {count:5d}  {outcome}")


if __name__ == "__main__":
    main()
