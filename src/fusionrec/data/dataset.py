"""The dataset bundle: id maps, interactions, item side information and knowledge graph, with statistics and a hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from fusionrec.data.ids import IdMap
from fusionrec.data.interactions import Interactions
from fusionrec.data.knowledge_graph import KnowledgeGraph
from fusionrec.data.side_info import ItemSideInfo
from fusionrec.data.social_graph import SocialGraph
from fusionrec.data.user_side_info import UserSideInfo


@dataclass(frozen=True, eq=False)
class Dataset:
    """Everything known about one dataset, aligned to one user map and one item map.

    ``presplit`` holds user-given ``train``/``valid``/``test`` interactions (RecBole's ``benchmark_filename``); when set,
    ``interactions`` is their concatenation and splitting uses them as given. ``timestamps_are_positions``: the
    interactions' timestamps are positions in each user's ordered sequence (read from sequential files), not times."""

    name: str
    users: IdMap
    items: IdMap
    interactions: Interactions
    item_info: ItemSideInfo | None = None
    kg: KnowledgeGraph | None = None
    presplit: dict[str, Interactions] | None = None
    source: str | None = None
    notes: list[str] = field(default_factory=list)
    timestamps_are_positions: bool = False
    social: SocialGraph | None = None  # who knows whom among the users (NAME.net), when the dataset has it
    user_info: UserSideInfo | None = None  # the users' own fields (NAME.user), when the dataset has any

    @property
    def history_order(self) -> str:
        """What orders each user's history: ``position`` (sequence files), ``timestamp`` or ``none``."""
        if self.timestamps_are_positions:
            return "position"
        return "timestamp" if self.interactions.timestamps is not None else "none"

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def stats(self) -> dict:
        """Counts a user checks first: users, items, interactions, density, and the graph's size and coverage."""
        n_inter = len(self.interactions)
        out = {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n_inter,
            "density": round(n_inter / max(1, self.n_users * self.n_items), 6),
            "item_fields": self.item_info.fields if self.item_info else [],
            "field_kinds": {n: f"{k} ({how})" for n, (k, how) in self.item_info.kinds().items()}
            if self.item_info else {},
            "histories": {"position": "ordered (positions in the sequence files)", "timestamp": "ordered by timestamp",
                          "none": "unordered (no timestamps)"}[self.history_order],
            "entities": self.kg.n_entities if self.kg else 0,
            "relations": self.kg.n_relations if self.kg else 0,
            "triples": int(len(self.kg.triples)) if self.kg else 0,
            "linked_items": self.kg.n_linked_items if self.kg else 0,
            "user_fields": self.user_info.fields if self.user_info else [],
            "social_edges": self.social.n_edges if self.social else 0,
            "users_with_friends": self.social.users_with_friends() if self.social else 0,
        }
        if self.presplit:
            out["presplit"] = {k: len(v) for k, v in self.presplit.items()}
        return out

    def content_hash(self) -> str:
        """sha256 over the ids, interactions, side information and graph: equal data gives an equal hash."""
        h = hashlib.sha256()
        for part in (
            "\x1f".join(self.users.to_list()).encode(),
            "\x1f".join(self.items.to_list()).encode(),
            self.interactions.fingerprint(),
            self.item_info.fingerprint() if self.item_info else b"-",
            self.kg.fingerprint() if self.kg else b"-",
            self.social.fingerprint() if self.social else b"-",
            *((self.user_info.fingerprint(),) if self.user_info else ()),  # older hashes stay valid without
            b"".join(k.encode() + v.fingerprint() for k, v in sorted((self.presplit or {}).items())),
        ):
            h.update(hashlib.sha256(part).digest())
        return h.hexdigest()
