"""Imports every model module so that each registers itself.

A new model file must be added here (a meta-test checks)."""

from fusionrec.models import bpr, itemknn, lightgcn, pop  # noqa: F401
from fusionrec.models import fusionrec  # noqa: F401
from fusionrec.models import cke  # noqa: F401
from fusionrec.models import content_knn  # noqa: F401
from fusionrec.models import kg_knn  # noqa: F401
from fusionrec.models import kgat  # noqa: F401
from fusionrec.models import ease  # noqa: F401
from fusionrec.models import sparse_ease  # noqa: F401
from fusionrec.models import social_lightgcn  # noqa: F401
from fusionrec.models import sasrec  # noqa: F401
from fusionrec.models import fusionrec_seq  # noqa: F401
from fusionrec.models import biased_mf  # noqa: F401
