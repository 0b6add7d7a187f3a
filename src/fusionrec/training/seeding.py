"""One seed for everything random in a run: Python, numpy, torch, and a dedicated generator for sampling."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seeds Python's, numpy's and torch's global generators (so a model built right after gets the same initial
    weights) and returns a fresh ``torch.Generator`` seeded with ``seed`` for the trainer's shuffling and sampling."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
