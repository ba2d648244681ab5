"""``field_differences``: where a resource no longer holds what was sent, path by path."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bundle_promotion.bundle.config.job_settings import differs, field_differences

SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "a", "b"])
SETTINGS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["name", "tags", "task_key", "x"]), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(SETTINGS, SETTINGS)
def test_it_finds_a_difference_exactly_when_differs_does(sent: Any, remote: Any) -> None:
    assert bool(list(field_differences(sent, remote))) == differs(sent, remote)


def test_a_task_is_named_by_its_key_and_the_path_reaches_the_changed_leaf() -> None:
    sent = {"tasks": [{"task_key": "a", "new_cluster": {"num_workers": 2}}, {"task_key": "b"}]}
    remote = {"tasks": [{"task_key": "b"}, {"task_key": "a", "new_cluster": {"num_workers": 8, "x": 1}}]}

    assert list(field_differences(sent, remote)) == [("tasks[a].new_cluster.num_workers", 2, 8)]


def test_fields_the_server_adds_are_not_differences_but_a_sent_field_it_lost_is() -> None:
    sent = {"name": "etl", "tags": {"team": "sales"}, "description": ""}
    remote = {"name": "etl", "timeout_seconds": 0}

    assert list(field_differences(sent, remote)) == [("tags", {"team": "sales"}, None)]


def test_a_list_whose_keys_are_not_text_or_not_unique_is_compared_item_by_item() -> None:
    """Found by the property above: a key that is a list, and two items with one key."""
    assert list(field_differences([], [{"name": []}])) == [("", [], [{"name": []}])]
    sent = [{"name": "a", "x": 1}, {"name": "a"}]
    assert list(field_differences(sent, [{"name": "a"}])) == [("", sent, [{"name": "a"}])]
    assert differs(sent, [{"name": "a"}])
