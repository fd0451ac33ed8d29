"""A labeling team: annotators, their access tokens, and who labeled what.

``fishermask label serve PROJECT --annotators alice,bob`` gives each annotator a page of their
own. An annotator's token is derived from the owner's (HMAC-SHA256 of the name, keyed with
the owner token): it is random when the owner's is, stable across restarts when the owner's
is given (``--token`` or ``FISHERMASK_LABEL_TOKEN``), differs per annotator, and does not reveal
the owner's token. Tokens are stored nowhere; the server compares a request's token with each
in constant time (:func:`secrets.compare_digest`).

Attribution lives in the store (``labels.annotator``; None is the owner). Per annotator, their
*own* current action on an image is their newest one on it that is not undone; the image's
state is still the newest action of anyone ("latest wins"). An image is a *disagreement* when
two annotators' own current actions on it are labels of different classes (their *sides*; the
owner's decision is not a side: while it is the image's current action, the owner's side is
their own action before it, :meth:`fishermask.label.store.Store.disagreement_sides`).

Resolving one: the annotator who differs relabels it (their own label then agrees), or undoes
their label (``POST /api/undo``: an annotator their own only, the owner anyone's; ``label undo
PROJECT ID``, the owner's; ``label history PROJECT PATH`` and ``GET /api/history/{id}`` list
each action's id), or the owner *decides* it: a label recorded as the owner's with source
``decision`` (``label decide``, ``label add --decide``, ``POST /api/labels`` with ``"decide":
true``, the owner's token only; on the owner's page, the Labeled view's "disagreements only"
and Shift + a class key).
The decision is the image's current label (latest wins), and the disagreement counts as
*decided*, not open, for as long as the decision is the image's current action: a later label,
skip or unsure of anyone on it opens it again (when the labels still differ); the owner's undo
of the decision too. A skip or unsure never replaces someone else's label (refused, 409 by the
API; :func:`fishermask.label.store._check_not_others_label`): it would erase their label from
the counts, the rounds and the exports without a word.

Who may replace the batch everybody is labeling (``POST /api/next``, ``POST /api/revisit``):
the owner always (their token, and the commands ``label next``, ``label revisit``,
``label train``); an annotator only once every image of the batch has been labeled, skipped
or marked unsure by someone (else 409, :func:`batch_not_done`), so no one's images are taken
from under them; and with ``label serve --owner-only-queue`` never (403,
:data:`OWNER_ONLY`). Each round records who started it (``rounds.started_by``).

Who may start a label check from the page (``POST /api/check``): the same people, less the
batch rule, which protects a batch a check does not touch (:func:`check_refusal`); each
check records who started it (``label_checks.started_by``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Collection, Sequence
from typing import Any

from fishermask.errors import ConfigError

#: The name shown for actions given with the owner's token or by the commands (stored as NULL).
OWNER = "owner"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


def is_name(name: str) -> bool:
    """Whether ``name`` may name an annotator (letters, digits, ``_ . -``, at most 32)."""
    return _NAME.fullmatch(name) is not None


def parse_annotators(text: str) -> list[str]:
    """``"alice,bob"`` -> ``["alice", "bob"]``; names of letters, digits, ``_ . -`` (at most
    32, starting with a letter or digit), none twice, not ``owner``."""
    names = [n.strip() for n in text.split(",")]
    for n in names:
        if not _NAME.fullmatch(n):
            raise ConfigError(
                f"--annotators {text!r}: {n!r} is not a name; use letters, digits, _ . - "
                "(at most 32, starting with a letter or digit), e.g. --annotators alice,bob."
            )
        if n.lower() == OWNER:
            raise ConfigError(
                f"--annotators {text!r}: {n!r} is the name of the owner's token (the URL "
                "printed first; names are compared ignoring case); name the annotators "
                "otherwise."
            )
    seen = [n.lower() for n in names]
    twice = next((i for i, n in enumerate(names) if seen.index(n.lower()) != i), None)
    if twice is not None:
        first = names[seen.index(seen[twice])]
        if first == names[twice]:
            raise ConfigError(f"--annotators {text!r} names {first!r} twice; name each once.")
        raise ConfigError(
            f"--annotators {text!r} names one annotator twice: {first!r} and "
            f"{names[twice]!r} (names are compared ignoring case, as their records would be "
            "mixed up otherwise); give each annotator a name of their own."
        )
    return names


#: Characters of an access token: those a URL carries as they are (the page puts the token
#: into its image, script and export URLs).
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
#: The shortest owner token a team may use: 22 URL-safe characters, 132 bits when random.
MIN_TEAM_TOKEN = 22
_NEW_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


def check_token(token: str, *, team: bool, exposed: bool = False, host: str = "") -> None:
    """Refuse a given owner token (``--token``) that does not fit in a URL as it is, and with a
    team (``team``) one shorter than :data:`MIN_TEAM_TOKEN`: every annotator's token is an
    HMAC keyed with it, so an annotator can test guesses of it offline against their own
    token (about 10^5 a second per core) and, once found, act as the owner or as anyone
    else. Likewise a short one served to other machines (``exposed``: ``--host`` ``host`` is
    not loopback): the server does not limit wrong guesses, which a random token of 22 or
    more characters (132 bits) makes pointless. The message never repeats the token."""
    fix = f"leave --token out (a random one), or make one with {_NEW_TOKEN}"
    if not _TOKEN.fullmatch(token):
        raise ConfigError(
            "--token: use letters, digits, - and _ only (the page puts the token into URLs "
            f"as it is); {fix}."
        )
    if team and len(token) < MIN_TEAM_TOKEN:
        raise ConfigError(
            f"--token of {len(token)} characters with --annotators: each annotator's token is "
            "derived from it, so an annotator could find a short or chosen one from their own "
            f"URL and act as the owner; use at least {MIN_TEAM_TOKEN} random characters: {fix}."
        )
    if exposed and len(token) < MIN_TEAM_TOKEN:
        raise ConfigError(
            f"--token of {len(token)} characters with --host {host}: anyone who can reach this "
            "machine could guess a short or chosen token (wrong guesses are not limited); use "
            f"at least {MIN_TEAM_TOKEN} random characters: {fix}; or --host 127.0.0.1 (this "
            "machine only)."
        )


def annotator_token(owner_token: str, name: str) -> str:
    """The access token of annotator ``name`` under ``owner_token`` (32 URL-safe characters)."""
    mac = hmac.new(owner_token.encode(), b"fishermask-annotator:" + name.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode()[:32]


#: The refusal (403) of a new batch asked by an annotator under ``--owner-only-queue``.
OWNER_ONLY = (
    "only the owner starts the next round or a revisit on this server (label serve "
    "--owner-only-queue); ask the owner"
)
#: The refusal (403) of a label check asked by an annotator under ``--owner-only-queue``.
OWNER_ONLY_CHECK = (
    "only the owner starts a label check on this server (label serve --owner-only-queue), "
    "as only the owner starts rounds; ask the owner"
)
#: ``POST /api/labels`` with ``"decide": true`` and an annotator's token (403).
OWNER_ONLY_DECIDE = (
    "only the owner decides a disagreement (a deciding label); label the image as you see it, "
    "or ask the owner"
)
#: ``GET /api/labeled?disagreements=...`` with an annotator's token (403).
OWNER_ONLY_DISAGREEMENTS = (
    "the list of disagreements (who gave which label, for the owner to decide) is the "
    "owner's; filter the Labeled view by annotator to see your own labels"
)
#: ``GET /api/export.csv?annotators=true`` with an annotator's token (403).
OWNER_ONLY_EXPORT = (
    "the export with an annotator column (who gave each label, across the team) is the "
    "owner's: download it without annotators=true, or ask the owner (`fishermask label "
    "export PROJECT --format csv --annotators`)"
)


def batch_not_done(left: int, action: str) -> str:
    """The refusal (409) of ``action`` (``start the next round``, ``revisit``) asked by an
    annotator while ``left`` images of the batch are still to do."""
    them = "them" if left != 1 else "it"
    return (
        f"the current batch still has {left} image{'s' * (left != 1)} nobody has labeled, "
        f"skipped or marked unsure; finish {them} first, or ask the owner to {action} (an "
        "annotator may once the batch is done)"
    )


def queue_refusal(annotator: str | None, left: int, *, owner_only: bool) -> str | None:
    """Why ``annotator`` (None: the owner) may not replace the batch now, or None if they may
    (a running round aside, which refuses everyone)."""
    if annotator is None:
        return None
    if owner_only:
        return OWNER_ONLY
    return batch_not_done(left, "start the next round or revisit") if left else None


def check_refusal(annotator: str | None, *, owner_only: bool) -> str | None:
    """Why ``annotator`` (None: the owner) may not start a label check (``POST /api/check``),
    or None if they may (a running round or check aside, which refuses everyone). The rule
    of the rounds, less what protects the batch: under ``--owner-only-queue`` only the owner
    trains models, so only the owner checks; otherwise anyone may, the batch not done too (a
    check takes no image from anyone: it trains on the labels and replaces no batch)."""
    if annotator is not None and owner_only:
        return OWNER_ONLY_CHECK
    return None


def name_of(annotator: str | None) -> str:
    return OWNER if annotator is None else annotator


def per_annotator(
    rows: Sequence[tuple[int, str | None, int, str, int | None]],
) -> dict[str, dict[str, int]]:
    """``{name: {"labeled", "skipped", "unsure"}}``: how many images each annotator's own
    current action labels, skips or marks unsure (rows of
    :meth:`~fishermask.label.store.Store.current_by_annotator`), by name."""
    out: dict[str, dict[str, int]] = {}
    key = {"label": "labeled", "skip": "skipped", "unsure": "unsure"}
    for _, who, _, kind, _ in rows:
        counts = out.setdefault(name_of(who), {"labeled": 0, "skipped": 0, "unsure": 0})
        counts[key[kind]] += 1
    return dict(sorted(out.items()))


def disagreements(
    rows: Sequence[tuple[int, str | None, int, str, int | None]],
) -> dict[int, dict[str, int]]:
    """``image_id -> {name: class_id}`` of the images whose annotators' own current labels
    name different classes (skips and unsure are not labels, so never disagree)."""
    labels: dict[int, dict[str, int]] = {}
    for image_id, who, _, kind, class_id in rows:
        if kind == "label" and class_id is not None:
            labels.setdefault(image_id, {})[name_of(who)] = class_id
    return {i: dict(sorted(d.items())) for i, d in labels.items() if len(set(d.values())) > 1}


def disagreement_rows(
    rows: Sequence[tuple[int, str | None, int, str, int | None]],
    paths: dict[int, str],
    current: dict[int, tuple[int, str, int | None]],
    classes: Sequence[str],
    decisions: Collection[int] = (),
) -> list[dict[str, Any]]:
    """``{"image_id", "path", "current", "status", "labels": {name: class name}}`` of every
    disagreement, by path; ``current``: the image's state (its newest action: a class name,
    ``skipped`` or ``unsure``); ``status``: ``decided`` when its current action is the owner's
    decision (its id in ``decisions``), else ``open``."""
    out = []
    for image_id, by in disagreements(rows).items():
        cur = current.get(image_id)
        state = None
        if cur is not None and cur[1] == "label" and cur[2] is not None:
            state = classes[cur[2]]
        elif cur is not None:
            state = {"skip": "skipped"}.get(cur[1], cur[1])
        out.append(
            {
                "image_id": image_id,
                "path": paths[image_id],
                "current": state,
                "status": "decided" if image_id in decisions else "open",
                "labels": {n: classes[c] for n, c in by.items()},
            }
        )
    return sorted(out, key=lambda d: d["path"])
