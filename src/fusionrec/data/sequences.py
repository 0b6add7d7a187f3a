"""RecBole's sequential atomic format: ``.inter`` rows of ``user_id:token``, ``item_id_list:token_seq`` (the history
so far) and ``item_id:token`` (the next item), as RecBole, UniSRec and VQ-Rec ship Amazon data.

``NAME.train.inter`` holds one row per training PREFIX of each user's ordered sequence; ``NAME.valid.inter`` and
``NAME.test.inter`` one row per user (the history, then the target). Histories may be cut to their last ``W`` items
(``W``: the longest history in the files, 50 in UniSRec's data), so the prefixes are chained, not just the longest
one taken: a row whose history is the last ``min(len(seq), W)`` items of the sequence built so far extends it by its
target. Every item gets its position in the user's sequence as its timestamp (train 0..n-1, valid target n, test
target n+1), so temporal and leave-one-out splits and sequence models see the order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fusionrec.data.build import RawInteractions
from fusionrec.errors import DataError

HISTORY_FIELD = "item_id_list"


@dataclass(frozen=True, eq=False)
class SequenceRows:
    """Rows of one sequential file: n ``users``, n ``histories`` (token lists), n ``targets``, ``lines`` int64 (n,)."""

    file: str
    users: list[str]
    histories: list[list[str]]
    targets: list[str]
    lines: np.ndarray

    @property
    def longest(self) -> int:
        return max((len(h) for h in self.histories), default=0)


@dataclass
class _Sequence:
    """One user's ordered items so far, the file and line each came from."""

    items: list[str]
    lines: list[int]
    file: str


def collapse(rows: SequenceRows, window: int) -> dict[str, _Sequence]:
    """Each user's prefixes chained into one ordered sequence (users in order of first appearance).

    ``window``: the length histories are cut to (the longest history over all files read together). Raises
    :class:`DataError` naming the first row that does not continue its user's sequence."""
    by_user: dict[str, list[int]] = {}
    for k, user in enumerate(rows.users):
        by_user.setdefault(user, []).append(k)
    return {user: _chain(rows, user, ks, window) for user, ks in by_user.items()}


def _chain(rows: SequenceRows, user: str, ks: list[int], window: int) -> _Sequence:
    hist, targets, lines = rows.histories, rows.targets, rows.lines
    shortest = min(len(hist[k]) for k in ks)
    starts = [k for k in ks if len(hist[k]) == shortest]
    if len(starts) > 1 and shortest >= window:  # every row cut to the window: start where no other row leads
        leads_to = {tuple((hist[k] + [targets[k]])[-window:]) for k in ks}
        starts = [k for k in starts if tuple(hist[k]) not in leads_to] or starts
    start = starts[0]
    by_history: dict[tuple[str, ...], list[int]] = {}
    for k in reversed(ks):  # pop() then yields rows with equal histories in file order
        if k != start:
            by_history.setdefault(tuple(hist[k]), []).append(k)
    seq = _Sequence(hist[start] + [targets[start]], [int(lines[start])] * (len(hist[start]) + 1), rows.file)
    used = {start}
    for _ in range(len(ks) - 1):
        found = by_history.get(tuple(seq.items[-window:]))
        if not found:
            k = next(k for k in ks if k not in used)
            raise DataError(f"user {user!r}: this row's history ({len(hist[k])} items, starting "
                            f"{' '.join(hist[k][:3])!r}) does not continue the sequence of {len(seq.items)} items "
                            f"that the user's rows with shorter histories chain into (each row must hold a prefix of "
                            f"one ordered sequence, or its last {window} items)", file=rows.file,
                            line=int(lines[k]), field=HISTORY_FIELD)
        k = found.pop()
        used.add(k)
        seq.items.append(targets[k])
        seq.lines.append(int(lines[k]))
    return seq


def sequence_interactions(rows: SequenceRows) -> RawInteractions:
    """A single sequential ``NAME.inter``: every user's rows collapsed into one ordered history."""
    seqs = collapse(rows, rows.longest)
    return _raw(rows.file, seqs, {u: 0 for u in seqs})


def sequence_parts(train: SequenceRows, valid: SequenceRows | None, test: SequenceRows) -> dict[str, RawInteractions]:
    """The given split of sequential files: train = each user's chained training sequence, valid / test = one
    target per user, at the positions after it. Valid's history must be the user's training sequence and test's
    the training sequence plus the valid target (or their last ``W`` items); a mismatch raises :class:`DataError`
    naming file, line and field. A user with no training row (a training sequence of one item) takes it from the
    first history that names it."""
    window = max(r.longest for r in (train, valid, test) if r is not None)
    seqs = collapse(train, window)
    targets: dict[str, dict[str, _Sequence]] = {}
    for name, rows in (("valid", valid), ("test", test)):
        if rows is None:
            continue
        got: dict[str, _Sequence] = {}
        first_line: dict[str, int] = {}
        for k, user in enumerate(rows.users):
            line = int(rows.lines[k])
            if user in first_line:
                raise DataError(f"user {user!r} has a second row (the first is on line {first_line[user]}); this "
                                "file holds one row per user", file=rows.file, line=line, field="user_id")
            first_line[user] = line
            expected = list(seqs[user].items) if user in seqs else None
            if expected is not None and name == "test" and "valid" in targets and user in targets["valid"]:
                expected += targets["valid"][user].items
            if expected is None:  # first evidence of this user's training sequence
                seqs[user] = _Sequence(list(rows.histories[k]), [line] * len(rows.histories[k]), rows.file)
                expected = list(rows.histories[k])
            else:
                _check_history(expected, rows.histories[k], window, rows.file, line, name, user)
            got[user] = _Sequence([rows.targets[k]], [line], rows.file)
        targets[name] = got
    out = {"train": _raw(train.file, seqs, {u: 0 for u in seqs})}
    for name in ("valid", "test"):
        if name not in targets:
            continue
        rows = valid if name == "valid" else test
        pos = {u: len(seqs[u].items) + (1 if name == "test" and u in targets.get("valid", {}) else 0)
               for u in targets[name]}
        out[name] = _raw(rows.file, targets[name], pos)
    return out


def _check_history(expected: list[str], history: list[str], window: int, file: str, line: int, part: str,
                   user: str) -> None:
    n, want = len(history), min(len(expected), window)
    what = "training sequence" + (" plus the validation target" if part == "test" else "")
    if n != want:
        raise DataError(f"user {user!r}: the history holds {n} items but the user's {what} has {len(expected)}"
                        + (f" (histories are cut to {window})" if len(expected) > window else ""),
                        file=file, line=line, field=HISTORY_FIELD)
    tail = expected[-n:] if n else []
    if history != tail:
        j = next(j for j in range(n) if history[j] != tail[j])
        raise DataError(f"user {user!r}: item {j + 1} of the history is {history[j]!r} where the user's {what} "
                        f"has {tail[j]!r}", file=file, line=line, field=HISTORY_FIELD)


def _raw(file: str, seqs: Mapping[str, _Sequence], first_position: Mapping[str, int]) -> RawInteractions:
    """Rows of ``seqs`` (user by user, in order) with timestamps = position in the user's whole sequence.

    ``lines`` are the lines of the rows each item came from; an item taken from another file's history (a user with
    no training row) keeps that file's line."""
    users: list[str] = []
    items: list[str] = []
    lines: list[int] = []
    positions: list[int] = []
    for user, seq in seqs.items():
        users += [user] * len(seq.items)
        items += seq.items
        lines += seq.lines
        positions += range(first_position[user], first_position[user] + len(seq.items))
    return RawInteractions(file, users, items, np.asarray(lines, dtype=np.int64),
                           timestamps=np.asarray(positions, dtype=np.float64))
