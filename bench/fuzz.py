"""Count what the property tests' inputs do to the spec loader and `bundle validate`.

Draws the very inputs the property tests draw (same strategies, same settings:
derandomized, 1,000 per property) and, instead of stopping at the first traceback,
counts every outcome: loaded, our typed error, or a raw traceback by exception type.
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


def tally(outcomes: Counter[str], run: Callable[[], str]) -> None:
    try:
        outcomes[run()] += 1
    except (SpecError, BundleConfigError):
        outcomes["typed error"] += 1
    except Exception as error:  # what we count: any traceback that is not ours
        outcomes[f"traceback: {type(error).__name__}"] += 1


def spec_runs(folder: Path) -> dict[str, Counter[str]]:
    path = folder / "spec.yaml"
    structured: Counter[str] = Counter()
    raw: Counter[str] = Counter()

    def load() -> str:
        load_spec(path)
        return "loaded"

    @HOSTILE
    @given(document=spec_properties.spec_documents())
    def documents(document: Any) -> None:
        path.write_text(yaml.safe_dump(document, allow_unicode=True))
        tally(structured, load)

    @HOSTILE
    @given(data=spec_properties.raw_bytes(spec_properties.LOCAL_EXAMPLE_SPEC))
    def any_bytes(data: bytes) -> None:
        path.write_bytes(data)
        tally(raw, load)

    documents()
    any_bytes()
    return {"spec loader, spec-shaped documents": structured, "spec loader, raw bytes": raw}


def bundle_runs(bundle: Path) -> dict[str, Counter[str]]:
    structured: Counter[str] = Counter()
    raw: Counter[str] = Counter()

    def check(target: str) -> Callable[[], str]:
        def run() -> str:
            errors = validate(bundle, target, current_user=bundle_properties.USER).errors
            read_outline(bundle)
            return "typed error" if errors else "valid"

        return run

    @HOSTILE
    @given(
        root=bundle_properties.root_document,
        included=bundle_properties.include_document,
        target=st.sampled_from(["", "dev", "prod"])
        | st.sampled_from(["dev", "prod"])
        | bundle_properties.text,
    )
    def documents(root: Any, included: Any, target: str) -> None:
        (bundle / "databricks.yml").write_text(yaml.safe_dump(root, allow_unicode=True))
        (bundle / "resources" / "extra.yml").write_text(yaml.safe_dump(included, allow_unicode=True))
        tally(structured, check(target))

    @HOSTILE
    @given(
        data=bundle_properties.raw_bytes((bundle_properties.EXAMPLE_BUNDLE / "databricks.yml").read_bytes())
    )
    def any_bytes(data: bytes) -> None:
        (bundle / "databricks.yml").write_bytes(data)
        (bundle / "resources" / "extra.yml").write_text("")
        tally(raw, check("dev"))

    documents()
    any_bytes()
    return {"bundle validate, bundle-shaped configs": structured, "bundle validate, raw bytes": raw}


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
