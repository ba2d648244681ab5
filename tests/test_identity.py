"""One person, one identity: what canonical_identity accepts, merges and refuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bundle_promotion.errors import IdentityRefused
from bundle_promotion.identity import IdentityMap, canonical_identity, person_or_none


@given(st.text(min_size=1, max_size=30))
def test_an_accepted_identity_is_its_own_canonical_form(name: str) -> None:
    person = person_or_none(name)
    if person is not None:
        assert canonical_identity(person) == person


@given(st.text(alphabet=st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=30))
def test_names_differing_only_in_case_are_one_person(name: str) -> None:
    assert canonical_identity(name.upper()) == canonical_identity(name.lower()) == canonical_identity(name)


@pytest.mark.parametrize("name", ["josé", "алиса", "mallory.dev@corp.example", "svc_deploy-2"])
def test_names_of_one_script_are_accepted(name: str) -> None:
    assert canonical_identity(name) == name


@pytest.mark.parametrize("name", ["", "al ice", "alice\u2060", "\u202ealice", "p\u0430ypal"])
def test_names_that_could_impersonate_are_refused(name: str) -> None:
    with pytest.raises(IdentityRefused, match="user name"):
        canonical_identity(name)


def test_other_identities_belong_to_a_user_only_as_configured() -> None:
    identities = IdentityMap.of({"Mallory": (["mallory-gh"], ["Mallory.Dev@corp.example"])})

    assert identities.github_user("Mallory-GH") == "mallory"
    assert identities.github_user("mallory") is None
    assert "mallory" in identities.people_of_authors(["Mallory Dev", "mallory.dev@corp.example"])
    assert "mallory" not in IdentityMap().people_of_authors(["Mallory Dev", "mallory.dev@corp.example"])
