"""Scratch: run a scaling study with a measuring-only monkeypatch (env ABL_PATCH). Not a product option."""
import os, sys
sys.path.insert(0, "/work/main")
from algebras.conformal import ConformalAlgebra
from algebras.hooks import NetworkHooks

patch = os.environ.get("ABL_PATCH", "")
if patch.startswith("temp"):
    # conformal attention: multivector query features times T (logits of point pairs become -T |x - y|^2 / 2)
    T = float(patch[4:])
    def query_features(self, x, _T=T):
        return NetworkHooks.query_features(self, x) * _T
    ConformalAlgebra.query_features = query_features
    print(f"[patch] conformal query features x{T}", file=sys.stderr)
elif patch:
    raise SystemExit(f"unknown patch {patch}")
from experiments.scaling.__main__ import main
sys.exit(main(sys.argv[1:]))
