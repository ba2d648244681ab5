"""One person, one identity: the auth manager's user id, normalised once.

Every gate, hold and audit event compares people by ``canonical_identity``: NFKC, so a
fullwidth ``alice`` (U+FF41...) is ``alice``, then casefold, so ``Alice`` is too. A name that could
pass for someone else's and is not theirs is refused rather than normalised: surrounding or
inner whitespace, invisible characters (zero-width, bidi controls), and letters of more
than one script (a Cyrillic es, U+0441, in ``carol``).

Other identities of a person, a GitHub login or a commit e-mail address, are theirs only
when configuration says so (``IdentityMap``); nothing is inferred from look-alike names.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Only the script table: the confusables table costs ~100 ms to load, paid at every DAG parse.
from confusable_homoglyphs import categories  # type: ignore[import-untyped]

from bundle_promotion.errors import IdentityRefused

__all__ = ["IdentityMap", "canonical_identity", "folded", "person_or_none"]

# Control, format (zero-width, bidi), private-use and unassigned code points, and separators.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn", "Zs", "Zl", "Zp"})


def canonical_identity(name: str) -> str:
    """The one identity ``name`` stands for; raises ``IdentityRefused`` when it could impersonate."""
    if not name or name != name.strip():
        raise IdentityRefused(
            f"user name {name!r} is empty or has surrounding whitespace; fix the account name"
        )
    canonical = folded(name)
    if hidden := [char for char in canonical if unicodedata.category(char) in _INVISIBLE_CATEGORIES]:
        codes = ", ".join(f"U+{ord(char):04X}" for char in hidden)
        raise IdentityRefused(
            f"user name {name!r} contains whitespace or invisible characters ({codes}); "
            "an identity is one word of visible text"
        )
    # Combining marks left over after NFKC (the dot of a casefolded 'İ') count as a script of their own.
    if len(categories.unique_aliases(canonical) - {"COMMON"}) > 1:
        raise IdentityRefused(
            f"user name {name!r} mixes scripts (for example a Cyrillic letter in a Latin name); "
            "use an account name written in one script"
        )
    return canonical


def folded(name: str) -> str:
    """NFKC and casefold, refusing nothing: for matching names to exclude, where one too many is safe."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def person_or_none(name: str) -> str | None:
    """``canonical_identity``, or None for a name that cannot be anyone's (it then counts for no one)."""
    try:
        return canonical_identity(name)
    except IdentityRefused:
        return None


@dataclass(frozen=True)
class IdentityMap:
    """Which GitHub logins and commit e-mail addresses belong to which Airflow user, as configured."""

    github: Mapping[str, str] = field(default_factory=dict)  # login -> user, both canonical
    emails: Mapping[str, str] = field(default_factory=dict)  # address -> user, both canonical

    @classmethod
    def of(cls, users: Mapping[str, tuple[Iterable[str], Iterable[str]]]) -> IdentityMap:
        """From ``{user: (github logins, e-mail addresses)}``, every name made canonical; a login or
        address given to two users is refused."""
        github: dict[str, str] = {}
        emails: dict[str, str] = {}
        for user, (logins, addresses) in users.items():
            person = canonical_identity(user)
            for owners, names in ((github, logins), (emails, addresses)):
                for name in map(canonical_identity, names):
                    if owners.setdefault(name, person) != person:
                        raise IdentityRefused(
                            f"'{name}' is mapped to both {owners[name]} and {person}; "
                            "map it to one user, in the spec's identities or the identities connection"
                        )
        return cls(github, emails)

    def github_user(self, login: str) -> str | None:
        """The Airflow user a GitHub login is configured to be; None when no one is."""
        person = person_or_none(login)
        return self.github.get(person) if person else None

    def people_of_authors(self, authors: Iterable[str]) -> frozenset[str]:
        """Every identity known for the commit authors: their names and addresses as written,
        an address's local part, and the users configured for an address."""
        known: set[str] = set()
        for author in authors:
            person = folded(author.strip())
            known.add(person)
            if "@" in person:
                known.add(person.split("@")[0])
                if person in self.emails:
                    known.add(self.emails[person])
        return frozenset(known)
