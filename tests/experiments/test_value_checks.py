"""Value checks where a planted bug once passed every test: the centred transformer's input
standardisation, and the split a run's recorded validation loss is computed on."""

from __future__ import annotations

import pytest
import torch

from experiments.models import build_model
from experiments.rigid_body.dataset import RigidBodyDataset
from experiments.rigid_body.generate import generate_dataset
from experiments.rigid_body.transforms import transform_sample
from experiments.training import TrainingDataModule, keypoint_mse
from experiments.training.evaluation import evaluate_splits

BODIES = 3


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("value_data"), 24, bodies=BODIES, seed=0, workers=1,
                            progress=False, frames=12)


def _all(ds):
    return ds[torch.arange(len(ds))]


def test_centred_transformer_standardises_the_centred_features(data_dir):
    """Statistics are those of the features AFTER centring each scene on its mean position: on the
    training set the standardised features have mean 0 and std 1, and translating every scene moves
    none of them."""
    train = _all(RigidBodyDataset(data_dir, "train", horizon=2))
    model = build_model("transformer", None, width=4, depth=1, num_heads=2, num_bodies=BODIES, centre=True).double()
    model.fit_normalization(train)
    batch = {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in train.items()}
    f = model.features(batch).reshape(-1, model.standardize.mean.numel())
    varying = f.std(0) > 1e-6
    torch.testing.assert_close(f.mean(0), torch.zeros_like(f.mean(0)), atol=1e-6, rtol=0)  # fitted in float32
    torch.testing.assert_close(f.std(0, unbiased=False)[varying], torch.ones(int(varying.sum()), dtype=f.dtype),
                               atol=1e-6, rtol=0)
    # the three position features are centred per scene: their mean is exactly 0 before standardising
    assert float(model.standardize.mean[:3].abs().max()) < 1e-6
    shifted = transform_sample(batch, torch.eye(3, dtype=torch.float64), torch.tensor([40.0, -25.0, 7.0],
                                                                                     dtype=torch.float64))
    assert float((shifted["positions"] - batch["positions"]).abs().min()) > 6  # the whole scene moved
    torch.testing.assert_close(model.features(shifted), model.features(batch), atol=1e-8, rtol=0)


def test_recorded_validation_loss_is_the_validation_splits(data_dir):
    """`val_loss` of a run is the keypoint MSE over the whole VALIDATION split (the split selection
    reads), computed here independently, and not the test split's."""
    torch.manual_seed(0)
    model = build_model("mlp", None, width=8, depth=1, num_bodies=BODIES)
    dm = TrainingDataModule(data_dir, horizon=2, batch_size=8, bodies=BODIES)
    dm.setup("fit")
    model.fit_normalization(_all(dm.train))
    model.eval()
    scores = evaluate_splits(model, dm, batch_size=7)
    with torch.no_grad():
        for split, key in (("val", "val_loss"), ("test", "test_loss")):
            ds = getattr(dm, split)
            batch = _all(ds)
            expected = float(keypoint_mse(model(batch).double(), batch["target_keypoints"].double()))
            assert scores["losses"][key] == pytest.approx(expected, rel=1e-6), split
    assert scores["losses"]["val_loss"] != pytest.approx(scores["losses"]["test_loss"], rel=1e-3)


def test_an_algebra_without_3d_embeddings_is_named_not_an_attribute_error():
    """`build_model("gatr", <a plain CliffordAlgebra>)` raised AttributeError 'embedding_parity'; now one
    message names every embedding the rigid-body model needs and the algebra lacks."""
    from algebras import CliffordAlgebra

    with pytest.raises(ValueError, match=r"cannot embed rigid bodies: it lacks embed_point, embed_direction, "
                                         r"embed_axial_vector, extract_point, embedding_parity"):
        build_model("gatr", CliffordAlgebra((1, -1, -1, -1)), width=4, depth=1, num_heads=2, num_bodies=BODIES)


@pytest.mark.parametrize("argv, message", [
    (["--rounds", "0"], "--rounds: expected a positive integer"),
    (["--threads", "0"], "--threads: expected a positive integer"),
    (["--device", "cuda:3"], "--device cuda:3: this torch sees"),
    (["--reference-gatr", "."], "not a checkout of the reference GATr"),
])
def test_benchmark_refuses_bad_arguments_with_one_line(argv, message, capsys):
    """Each used to fail with a traceback, some only after building and compiling every model."""
    from experiments.benchmark import main

    assert main([*argv, "--algebras", "euclidean", "--modes", "eager", "--no-lgatr", "--no-transformer"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_refusing_this_project_as_the_reference_leaves_our_operators_registered(capsys):
    """``--reference-gatr`` on a checkout of this project used to import it as the reference: its kernels then
    re-registered every ``gatr::*`` operator, torch destroyed ours, and later calls read freed memory (the
    full suite's flaky std::bad_alloc and segfault in the compile tests that ran after this file)."""
    from torch._library.custom_ops import OPDEF_TO_LIB

    from experiments.benchmark import main
    from gatr.kernels.bilinear import outer_gemm

    ops = [q for q in OPDEF_TO_LIB if q.startswith("gatr::")]
    before = {q: OPDEF_TO_LIB[q] for q in ops}
    assert "gatr::outer_gemm" in ops
    assert main(["--reference-gatr", ".", "--algebras", "euclidean", "--modes", "eager", "--no-lgatr",
                 "--no-transformer"]) == 2
    assert "a checkout of this project" in capsys.readouterr().err
    assert {q: OPDEF_TO_LIB[q] for q in ops} == before  # the same libraries: nothing re-registered
    x = torch.randn(3, 1, 2)
    ones = torch.ones(1, 4, 2)  # every table entry 1: each product component is sum_ij x_i x_j
    torch.testing.assert_close(outer_gemm(x, x, ones, ones, ones), (x.sum(-1, keepdim=True) ** 2).expand(3, 1, 2))


def test_a_wrongly_typed_model_setting_is_one_line_from_the_training_cli(tmp_path, capsys):
    from experiments.train import cli_main

    rc = cli_main(["fit", "--config", "experiments/configs/gatr_euclidean.yaml", "--model.model_kwargs",
                   '{"dropout": "0.1"}', "--trainer.max_steps", "1", "--data.data_dir", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert rc == 2 and "dropout must be" in err and "Traceback" not in err
