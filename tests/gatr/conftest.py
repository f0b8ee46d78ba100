import pytest
import torch

from algebras import get_algebra
from gatr_test_utils import ALGEBRAS

# Tiny tensors: one intra-op thread avoids OpenMP spin-wait overhead (100x slower on a busy 2-core box).
torch.set_num_threads(1)


@pytest.fixture(params=ALGEBRAS)
def alg(request):
    return get_algebra(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
