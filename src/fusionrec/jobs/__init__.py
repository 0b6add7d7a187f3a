"""The jobs the command line runs: one training run with its results and artifact (``experiment``), several models
on one split (``compare``), FusionRec's ablations (``ablation``) and ``make demo`` (``demo``). The top layer beside
``cli.py``: it wires data, knowledge, models, training and evaluation together; nothing below imports it."""
