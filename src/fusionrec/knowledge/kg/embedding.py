"""Knowledge-graph embedding losses, composed as representations + an interaction function + a ranking loss.

Entity and relation representations are ``nn.Embedding`` tables (the entity table may be passed in and shared with a
recommendation model, e.g. KGAT's node table or CKE's item table); an interaction function turns looked-up vectors
into a plausibility score, higher = more plausible; the loss compares true triples with corrupted ones:

    loss = mean over (triple, negative) of softplus(margin + score(h, r, t') - score(h, r, t))

the soft-margin ranking loss. With ``margin=0`` it is KGAT's / BPR's ``-log sigmoid(score(h, r, t) - score(h, r, t'))``;
a large margin behaves like the hinge ``max(0, margin + score' - score)`` of the TransE paper but keeps a gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def transe_interaction(h: torch.Tensor, r: torch.Tensor, t: torch.Tensor, p_norm: float = 2.0) -> torch.Tensor:
    """TransE: ``-||h + r - t||_p``. ``h``, ``r``, ``t``: broadcastable (..., d) -> (...)."""
    return -torch.linalg.vector_norm(h + r - t, ord=p_norm, dim=-1)


def transr_interaction(h: torch.Tensor, r: torch.Tensor, t: torch.Tensor, m_r: torch.Tensor) -> torch.Tensor:
    """TransR: ``-||M_r h + r - M_r t||_2^2``. ``h``, ``t``: (..., d_e); ``r``: (..., d_r); ``m_r``: (..., d_r, d_e),
    all broadcastable -> (...)."""
    projected = (m_r @ (h - t).unsqueeze(-1)).squeeze(-1)
    return -(projected + r).pow(2).sum(dim=-1)


def soft_margin_ranking_loss(pos: torch.Tensor, neg: torch.Tensor, margin: float) -> torch.Tensor:
    """``mean softplus(margin + neg - pos)``. ``pos``: (B,); ``neg``: (B, K) -> scalar."""
    return F.softplus(margin + neg - pos.unsqueeze(-1)).mean()


class _TranslationalModel(nn.Module):
    """Entity and relation tables plus the loss; subclasses define :meth:`score`."""

    def __init__(self, n_entities: int, n_relations: int, ent_dim: int, rel_dim: int, margin: float,
                 entity_embedding: nn.Embedding | None):
        super().__init__()
        if n_entities <= 0 or n_relations <= 0:
            raise ValueError("n_entities and n_relations must be positive")
        self.n_entities, self.n_relations, self.margin = int(n_entities), int(n_relations), float(margin)
        if entity_embedding is None:
            entity_embedding = nn.Embedding(n_entities, ent_dim)
            nn.init.xavier_uniform_(entity_embedding.weight)
        elif entity_embedding.num_embeddings < n_entities or entity_embedding.embedding_dim != ent_dim:
            raise ValueError(f"a shared entity table must have at least {n_entities} rows of size {ent_dim}, "
                             f"got {entity_embedding.num_embeddings} x {entity_embedding.embedding_dim}")
        self.entity_embedding = entity_embedding
        self.relation_embedding = nn.Embedding(n_relations, rel_dim)
        nn.init.xavier_uniform_(self.relation_embedding.weight)

    def score(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Plausibility (higher = more plausible) of triples given as LongTensor indices of broadcastable shapes,
        e.g. (B,) each -> (B,), or h, r (B, 1) with t (B, K) -> (B, K)."""
        raise NotImplementedError

    def loss(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor, t_neg: torch.Tensor) -> torch.Tensor:
        """Soft-margin ranking loss of true triples against corrupted tails. ``h``, ``r``, ``t``: LongTensor (B,);
        ``t_neg``: LongTensor (B,) or (B, K) -> scalar."""
        if t_neg.dim() == 1:
            t_neg = t_neg.unsqueeze(-1)
        pos = self.score(h, r, t)
        neg = self.score(h.unsqueeze(-1), r.unsqueeze(-1), t_neg)
        return soft_margin_ranking_loss(pos, neg, self.margin)


class TransE(_TranslationalModel):
    """TransE (Bordes et al. 2013): a relation translates the head onto the tail, ``score = -||e_h + e_r - e_t||_p``.

    ``entity_embedding``: an ``nn.Embedding`` of at least ``n_entities`` rows of size ``dim`` to share (its
    first ``n_entities`` rows are the entities), or None for a fresh table."""

    def __init__(self, n_entities: int, n_relations: int, dim: int, p_norm: float = 2.0, margin: float = 1.0,
                 entity_embedding: nn.Embedding | None = None):
        super().__init__(n_entities, n_relations, dim, dim, margin, entity_embedding)
        self.p_norm = float(p_norm)

    def score(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ent, rel = self.entity_embedding, self.relation_embedding
        return transe_interaction(ent(h), rel(r), ent(t), self.p_norm)

    def loss(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor, t_neg: torch.Tensor) -> torch.Tensor:
        """As the base loss, but heads, tails and corrupted tails are read from the entity table in ONE gather: each
        separate lookup would allocate and zero a gradient the size of the whole table in backward."""
        if t_neg.dim() == 1:
            t_neg = t_neg.unsqueeze(-1)
        b = len(h)
        e = self.entity_embedding.weight.index_select(0, torch.cat([h, t, t_neg.reshape(-1)]))
        e_h, e_t, e_neg = e[:b], e[b:2 * b], e[2 * b:].view(b, t_neg.shape[1], -1)
        e_r = self.relation_embedding.weight.index_select(0, r)
        pos = transe_interaction(e_h, e_r, e_t, self.p_norm)
        neg = transe_interaction(e_h.unsqueeze(1), e_r.unsqueeze(1), e_neg, self.p_norm)
        return soft_margin_ranking_loss(pos, neg, self.margin)

    def regularization(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor, t_neg: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of ``(||e_h||^2 + ||e_r||^2 + ||e_t||^2 + mean_k ||e_t'_k||^2) / 2`` -> scalar."""
        ent, rel = self.entity_embedding, self.relation_embedding
        return _half_sq(ent(h), rel(r), ent(t), ent(t_neg.reshape(len(h), -1)))


class TransR(_TranslationalModel):
    """TransR (Lin et al. 2015), as used by CKE and KGAT: entities live in a ``ent_dim`` space and each relation
    projects them into its own ``rel_dim`` space with ``M_r`` (``projection``: (n_relations, rel_dim, ent_dim)),
    ``score = -||M_r e_h + e_r - M_r e_t||_2^2``. KGAT's attention reuses ``projection`` as its ``W_r``.
    Use ``margin=0`` for KGAT's ``-log sigmoid`` loss. ``entity_embedding`` as for :class:`TransE`."""

    def __init__(self, n_entities: int, n_relations: int, ent_dim: int, rel_dim: int, margin: float = 1.0,
                 entity_embedding: nn.Embedding | None = None):
        super().__init__(n_entities, n_relations, ent_dim, rel_dim, margin, entity_embedding)
        bound = math.sqrt(6.0 / (ent_dim + rel_dim))  # Xavier uniform for each relation's matrix
        self.projection = nn.Parameter(torch.empty(n_relations, rel_dim, ent_dim).uniform_(-bound, bound))

    def score(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """As :func:`transr_interaction`, with ``M_r`` applied per relation (:func:`project_by_relation`)."""
        h, r, t = torch.broadcast_tensors(h, r, t)
        ent = self.entity_embedding
        projected = project_by_relation(self.projection, r, ent(h) - ent(t))
        return -(projected + self.relation_embedding(r)).pow(2).sum(dim=-1)

    def loss_and_regularization(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor,
                                t_neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`loss` and :meth:`regularization` of one batch from ONE gather of heads, tails and corrupted tails
        and ONE projection of them by relation (``M_r e_h - M_r e_t`` equals ``M_r (e_h - e_t)``): every separate
        lookup would allocate and zero a gradient the size of the whole entity table in backward. ``h``, ``r``,
        ``t``: LongTensor (B,); ``t_neg``: (B,) or (B, K) -> (loss, regularization), scalars."""
        t_neg = t_neg.reshape(len(h), -1)
        b, k = len(h), t_neg.shape[1]
        e = self.entity_embedding.weight.index_select(0, torch.cat([h, t, t_neg.reshape(-1)]))
        rows_r = torch.cat([r, r, r.repeat_interleave(k)])
        projected = project_by_relation(self.projection, rows_r, e)
        p_h, p_t, p_neg = projected[:b], projected[b:2 * b], projected[2 * b:].view(b, k, -1)
        e_r = self.relation_embedding.weight.index_select(0, r)
        pos = -(p_h - p_t + e_r).pow(2).sum(dim=-1)
        neg = -(p_h.unsqueeze(1) - p_neg + e_r.unsqueeze(1)).pow(2).sum(dim=-1)
        return soft_margin_ranking_loss(pos, neg, self.margin), _half_sq(p_h, e_r, p_t, p_neg)

    def regularization(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor, t_neg: torch.Tensor) -> torch.Tensor:
        """KGAT's: the same half squared norms as :meth:`TransE.regularization`, of the projected entity vectors
        ``M_r e`` (so ``M_r`` is kept small too) -> scalar."""
        ent = self.entity_embedding
        t_neg = t_neg.reshape(len(h), -1)
        project = (lambda idx, rel: project_by_relation(self.projection, rel, ent(idx)))
        return _half_sq(project(h, r), self.relation_embedding(r), project(t, r),
                        project(t_neg, r.unsqueeze(-1).expand_as(t_neg)))


def project_by_relation(projection: torch.Tensor, r: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``M_r x`` row by row: ``projection`` (n_relations, d_r, d_e), ``r`` LongTensor (...), ``x`` (..., d_e) ->
    (..., d_r). One matrix product per distinct relation in ``r`` rather than a (d_r, d_e) matrix gathered per row,
    whose copy and scatter-add backward cost ~10x more on a 4,096-triple batch."""
    flat_r, flat_x = r.reshape(-1), x.reshape(-1, x.shape[-1])
    order = torch.argsort(flat_r, stable=True)
    relations, counts = torch.unique_consecutive(flat_r[order], return_counts=True)
    # one gather of the matrices and one sorted copy of the rows, sliced: each backward is one op, not one per relation
    matrices = projection.index_select(0, relations)  # (n_present, d_r, d_e)
    pieces = [rows @ m.T for m, rows in zip(matrices, torch.split(flat_x.index_select(0, order), counts.tolist()))]
    grouped = torch.cat(pieces) if pieces else flat_x.new_zeros(0, projection.shape[1])
    return grouped.index_select(0, torch.argsort(order)).view(*r.shape, projection.shape[1])


def _half_sq(h: torch.Tensor, r: torch.Tensor, t: torch.Tensor, t_neg: torch.Tensor) -> torch.Tensor:
    """``h``, ``r``, ``t``: (B, d); ``t_neg``: (B, K, d) -> scalar."""
    sq = h.pow(2).sum(-1) + r.pow(2).sum(-1) + t.pow(2).sum(-1) + t_neg.pow(2).sum(-1).mean(-1)
    return sq.mean() / 2
