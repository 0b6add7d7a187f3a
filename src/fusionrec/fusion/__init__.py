"""Fusion strategies behind one interface (``make_fusion(name, n_sources, dim)``): concat, gate, attention."""

from fusionrec.fusion.base import Fusion, FusionOut, fusion_names, make_fusion, masked_softmax

__all__ = ["Fusion", "FusionOut", "fusion_names", "make_fusion", "masked_softmax"]
