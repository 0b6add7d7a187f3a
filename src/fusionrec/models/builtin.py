"""Imports every model module so that each registers itself.

A new model file must be added here (a meta-test checks)."""

from fusionrec.models import bpr, itemknn, lightgcn, pop  # noqa: F401
from fusionrec.models import fusionrec  # noqa: F401
