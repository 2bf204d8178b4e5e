"""Distributed training: the EMD loss, heads, and the barrier-mode launcher (tf and horovod backends)."""
import os
import time

import numpy as np
import pytest
from conftest import make_cfg
from pyspark.sql import functions as F

from vistarank.training import heads
from vistarank.training.launcher import launch, write_snapshot


def test_emd_loss_against_a_hand_computed_value():
    t = np.array([[0.0, 0.5, 0.5, 0.0]])
    p = np.array([[0.25, 0.25, 0.25, 0.25]])
    # CDFs: t = (0, .5, 1, 1), p = (.25, .5, .75, 1); |diff| = (.25, 0, .25, 0); mean of squares = .03125
    assert heads.emd_numpy(t, p)[0] == pytest.approx(np.sqrt(0.03125))
    import keras

    assert float(keras.ops.convert_to_numpy(heads.emd_loss(t.astype("float32"), p.astype("float32")))[0]) == \
        pytest.approx(np.sqrt(0.03125), rel=1e-6)
    assert heads.emd_numpy(t, t)[0] == 0.0
    assert heads.mean_score(np.array([[0.0, 0.5, 0.5, 0.0]]))[0] == pytest.approx(2.5)


def _blobs(spark, n=600, dim=16, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (k, dim))
    y = rng.integers(0, k, n)
    x = centers[y] + rng.normal(0, 1, (n, dim))
    rows = [([float(v) for v in xi], int(yi), 1.0) for xi, yi in zip(x, y)]
    return spark.createDataFrame(rows, "x array<float>, y long, weight float"), x, y


def _spec(data, **kw):
    spec = {"backend": "tf", "data": data, "kind": "softmax", "n_out": 3, "hidden": [32, 16], "dropout": 0.1,
            "seed": 1, "learning_rate": 0.01, "batch_size": 32, "epochs": 4, "timeout_s": 300}
    spec.update(kw)
    return spec


def _accuracy(path, x, y):
    import keras

    model = keras.models.load_model(path)
    return float((np.argmax(model.predict(x.astype("float32"), verbose=0), axis=1) == y).mean())


def test_one_and_two_workers_learn_and_agree(spark, tmp_path):
    df, x, y = _blobs(spark)
    data = write_snapshot(df, str(tmp_path / "data"), 4)
    one = launch(spark, _spec(data, artifact=str(tmp_path / "one" / "head.keras")), 1)
    # two workers with the cosine-decayed rate (training.lr_schedule's default), one with a constant one
    two = launch(spark, _spec(data, artifact=str(tmp_path / "two" / "head.keras"), lr_schedule="cosine"), 2)
    assert [r["rank"] for r in two] == [0, 1]
    assert two[0]["digest"] == pytest.approx(two[1]["digest"], rel=1e-9)  # identical weights after training
    assert two[0]["steps_per_epoch"] == two[1]["steps_per_epoch"]
    assert sum(r["rows"] for r in two) == len(x)
    acc1 = _accuracy(one[0]["artifact"], x, y)
    acc2 = _accuracy(two[0]["artifact"], x, y)
    assert acc1 > 0.9 and acc2 > 0.9
    assert abs(acc1 - acc2) <= 0.05  # the stated tolerance between 1 and 2 workers
    assert two[0]["losses"][-1] < two[0]["losses"][0]


def test_the_learning_rate_decays_to_zero_over_a_phase():
    import keras

    from vistarank.udfs.train_worker import learning_rate

    phase = {"learning_rate": 0.003, "epochs": 10}
    assert learning_rate(keras, phase, "constant", 7) == 0.003
    cosine = learning_rate(keras, phase, "cosine", 7)
    rates = [float(cosine(step)) for step in (0, 35, 70)]
    assert rates[0] == pytest.approx(0.003) and rates[1] == pytest.approx(0.0015, rel=1e-5) and rates[2] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="lr_schedule"):
        learning_rate(keras, phase, "step", 7)
    # the defaults: heads on embeddings decay; the image networks keep the constant rates they were tuned at
    from vistarank.config import load_config
    from vistarank.training import workflow as W

    cfg = load_config("local")
    assert W.head_spec(cfg, "d", "softmax", 9, "a")["lr_schedule"] == "cosine"
    assert W.fine_tune_spec(cfg, "d", "a", from_scratch=True)["lr_schedule"] == "constant"


def test_a_rerun_on_the_same_rows_gives_the_same_weights(spark, tmp_path):
    """Reproducible training: the same rows, arriving in another order and partitioning,
    make the same snapshot files, and two workers trained on them end with the same weights."""
    df, _, _ = _blobs(spark)
    a = write_snapshot(df, str(tmp_path / "a"), 4)
    b = write_snapshot(df.orderBy(F.rand(3)).repartition(5), str(tmp_path / "b"), 4)
    import pyarrow.parquet as pq

    def files(folder):
        return [pq.read_table(os.path.join(folder, f)).to_pylist()
                for f in sorted(os.listdir(folder)) if f.endswith(".parquet")]
    assert files(a) == files(b)
    one = launch(spark, _spec(a, artifact=str(tmp_path / "ra" / "head.keras")), 2)
    two = launch(spark, _spec(b, artifact=str(tmp_path / "rb" / "head.keras")), 2)
    assert one[0]["digest"] == two[0]["digest"] and one[0]["losses"] == two[0]["losses"]


@pytest.mark.pipeline
def test_fine_tuning_on_images_reruns_to_the_same_weights(spark, labelled, tmp_path):
    """The image networks (two phases, random crop, flip and rotation on 2 workers) rerun to
    the same weights and losses: the seeded augmentation draws reach the same batches."""
    from vistarank import io
    from vistarank import tables as T
    from vistarank.training import workflow as W

    img = (io.read(spark, labelled, T.IMAGES).select("image_id", "content").orderBy("image_id").limit(64)
           .withColumn("y", (F.abs(F.hash("image_id")) % 9).cast("long"))
           .withColumn("weight", F.lit(1.0).cast("float")))
    data = write_snapshot(img, str(tmp_path / "data"), 4, ("content", "y", "weight"))
    runs = []
    for i in range(2):
        spec = W.fine_tune_spec(labelled, data, str(tmp_path / f"run{i}" / "net.keras"), from_scratch=False)
        assert spec["augment"]["crop"] > 0 and spec["augment"]["rotation"] > 0
        for phase in spec["phases"]:
            phase["epochs"] = 2
        runs.append(launch(spark, spec, 2))
    assert runs[0][0]["losses"] == runs[1][0]["losses"] and len(runs[0][0]["losses"]) == 4
    assert runs[0][0]["digest"] == runs[1][0]["digest"]
    assert runs[0][0]["digest"] == pytest.approx(runs[0][1]["digest"], rel=1e-9)  # the two ranks agree


def test_a_failing_worker_fails_the_job_with_its_error(spark, tmp_path):
    df, _, _ = _blobs(spark, n=200)
    data = write_snapshot(df, str(tmp_path / "data"), 2)
    t0 = time.perf_counter()
    with pytest.raises(Exception, match="worker 1 failed on purpose"):
        launch(spark, _spec(data, fail_rank=1, timeout_s=120), 2)
    assert time.perf_counter() - t0 < 120


def test_multi_label_sigmoid_head_learns_tag_sets(spark, tmp_path):
    """Multi-label tags: the sigmoid head on (x, y = a 0/1 vector) through the same launcher."""
    rng = np.random.default_rng(3)
    n, dim, k = 600, 12, 4
    w = rng.normal(0, 1, (dim, k))
    x = rng.normal(0, 1, (n, dim))
    y = (x @ w > 0.3).astype(np.float32)  # each row: any subset of the 4 tags
    rows = [([float(v) for v in xi], [float(v) for v in yi], 1.0) for xi, yi in zip(x, y)]
    df = spark.createDataFrame(rows, "x array<float>, y array<float>, weight float")
    data = write_snapshot(df, str(tmp_path / "data"), 2)
    res = launch(spark, _spec(data, kind="sigmoid", n_out=k, epochs=15, artifact=str(tmp_path / "tags.keras")), 1)
    import keras

    p = keras.models.load_model(res[0]["artifact"]).predict(x.astype("float32"), verbose=0)
    assert p.shape == (n, k) and ((p >= 0) & (p <= 1)).all()
    assert ((p > 0.5) == (y > 0.5)).mean() > 0.85  # per-tag accuracy (a constant guess gets about 0.5)
    assert res[0]["losses"][-1] < res[0]["losses"][0]


HVD_PYTHON = os.environ.get("VISTARANK_HOROVOD_PYTHON",
                            os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                         ".venv-hvd", "bin", "python"))
needs_horovod = pytest.mark.skipif(
    not os.path.exists(HVD_PYTHON) and os.environ.get("VISTARANK_REQUIRE_HOROVOD") != "1",
    reason=f"no horovod environment at {HVD_PYTHON} (make horovod-env)")


@pytest.mark.horovod
@needs_horovod
def test_horovod_backend_one_and_two_workers_learn_and_agree(spark, tmp_path):
    df, x, y = _blobs(spark)
    data = write_snapshot(df, str(tmp_path / "data"), 4)
    hv = dict(backend="horovod", python=HVD_PYTHON)
    one = launch(spark, _spec(data, artifact=str(tmp_path / "one" / "head.keras"), **hv), 1)
    two = launch(spark, _spec(data, artifact=str(tmp_path / "two" / "head.keras"), lr_schedule="cosine", **hv), 2)
    assert {r["backend"] for r in one + two} == {"horovod"}
    assert two[0]["digest"] == pytest.approx(two[1]["digest"], rel=1e-9)  # identical weights after training
    assert sum(r["rows"] for r in two) == len(x)
    acc1 = _accuracy(one[0]["artifact"], x, y)  # rebuilt as a Keras 3 model from rank 0's weights
    acc2 = _accuracy(two[0]["artifact"], x, y)
    assert acc1 > 0.9 and acc2 > 0.9
    assert abs(acc1 - acc2) <= 0.05  # the same tolerance as the tf backend
    assert two[0]["losses"][-1] < two[0]["losses"][0]


@pytest.mark.horovod
@needs_horovod
def test_horovod_failing_worker_fails_the_job_with_its_error(spark, tmp_path):
    df, _, _ = _blobs(spark, n=200)
    data = write_snapshot(df, str(tmp_path / "data"), 2)
    t0 = time.perf_counter()
    with pytest.raises(Exception, match="worker 1 failed on purpose"):
        launch(spark, _spec(data, backend="horovod", python=HVD_PYTHON, fail_rank=1, timeout_s=120), 2)
    assert time.perf_counter() - t0 < 120


def test_a_missing_worker_interpreter_is_a_clear_error(spark, tmp_path):
    df, _, _ = _blobs(spark, n=100)
    data = write_snapshot(df, str(tmp_path / "data"), 1)
    with pytest.raises(Exception, match="worker interpreter .*nowhere/bin/python not found.*make horovod-env"):
        launch(spark, _spec(data, backend="horovod", python=str(tmp_path / "nowhere" / "bin" / "python")), 1)


def test_fine_tuning_a_savedmodel_is_a_clear_config_error(spark, tmp_path):
    from vistarank.jobs import train_head

    (tmp_path / "sm").mkdir()
    cfg = make_cfg(str(tmp_path / "lh"), "model.source=savedmodel", f"model.path={tmp_path}/sm")
    with pytest.raises(ValueError, match="fine_tune needs a Keras model.*fine_tune.enabled=false"):
        train_head.run(spark, cfg)


def test_with_the_horovod_backend_fine_tuning_still_runs_on_tf_here(tmp_path):
    """Heads go to the horovod workers; fine-tuning (Keras 3 backbone) stays on tf, in this
    environment's interpreter (the horovod env has no pandas, Pillow or Keras 3)."""
    from vistarank.training import workflow as W

    cfg = make_cfg(str(tmp_path / "lh"), "training.backend=horovod")
    head = W.head_spec(cfg, "d", "softmax", 9, "a.keras")
    assert head["backend"] == "horovod" and head["python"] == cfg.training.horovod_python
    ft = W.fine_tune_spec(cfg, "d", "f.keras", from_scratch=False)
    assert ft["backend"] == "tf" and "python" not in ft and ft["input"] == "images"
    assert [p["train"] for p in ft["phases"]] == ["head", "top"]
    scratch = W.fine_tune_spec(cfg, "d", "s.keras", from_scratch=True)
    assert scratch["from_scratch"] and [p["train"] for p in scratch["phases"]] == ["all"]
    assert scratch["phases"][0]["epochs"] == sum(p["epochs"] for p in ft["phases"])


@pytest.mark.parametrize("mode", ["included", "unit", "symmetric", "caffe", "torch"])
def test_fine_tuning_preprocesses_tensors_as_scoring_does_arrays(mode):
    """The fine-tuning input pipeline applies the scoring preprocessing to tf tensors."""
    import tensorflow as tf

    from vistarank.vision.models import preprocess

    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(preprocess(tf.constant(x), mode)), preprocess(x, mode), rtol=1e-5)


def test_unfreezing_from_an_unknown_layer_is_a_clear_error():
    import keras

    from vistarank.udfs.train_worker import set_trainable

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv_a")(inp)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Conv2D(4, 3, name="conv_b")(x)
    backbone = keras.Model(inp, x)
    with pytest.raises(ValueError, match="unfreeze_from='block5_conv1' is not a layer of the backbone"):
        set_trainable(backbone, backbone, "top", "block5_conv1")
    assert set_trainable(backbone, backbone, "top", "bn_a") == 2  # conv_b's kernel and bias; BatchNorm stays frozen
    assert set_trainable(backbone, backbone, "head", None) == 0


def test_the_true_label_arm_undoes_the_noise_and_reweighs():
    import pandas as pd

    from vistarank.training import workflow as W

    lab = pd.DataFrame({"image_id": list("abcd"), "x": [[0.0]] * 4, "y": [0, 2, 1, 1], "true_y": [0, 1, 1, 1],
                        "noisy": [False, True, False, False], "weight": [1.0] * 4})
    out = W.true_labels(lab)
    assert list(out["y"]) == [0, 1, 1, 1] and not out["noisy"].any()
    # class weights from the true labels: class 0 (one image) weighs three times class 1 (three)
    assert out["weight"].iloc[0] == pytest.approx(3 * out["weight"].iloc[1])
    assert list(lab["y"]) == [0, 2, 1, 1]  # the noisy budget itself is left as it was


def test_cleaning_drops_confident_contradictions_and_reweighs():
    import pandas as pd

    from vistarank.training import workflow as W

    k = len(W.CLASSES)
    lab = pd.DataFrame({"image_id": list("abcde"), "x": [[0.0]] * 5, "y": [0, 0, 1, 1, 1],
                        "noisy": [False, True, False, False, False], "weight": [1.0] * 5})
    oof = np.full((5, k), 0.01, np.float32)
    oof[0, 0] = 0.9   # agrees with its label
    oof[1, 1] = 0.8   # a flipped label, contradicted with confidence: flagged
    oof[2, 0] = 0.75  # a right label contradicted with confidence: flagged too (a false flag of class 1)
    oof[3, 0], oof[3, 1] = 0.5, 0.45  # contradicted, but not with confidence 0.7: kept
    oof[4, 1] = 0.95
    clean, rep = W.clean_labels(lab, oof, 0.7)
    assert list(clean["image_id"]) == ["a", "d", "e"]
    assert rep["flagged"] == 2 and rep["flagged_and_noisy"] == 1
    assert rep["precision"] == pytest.approx(0.5) and rep["recall"] == pytest.approx(1.0)
    assert rep["flagged_clean_by_class"] == {W.CLASSES[1]: 1}
    # re-weighted on what is left: class 0 (one label) weighs twice class 1 (two)
    assert clean["weight"].iloc[0] == pytest.approx(2 * clean["weight"].iloc[1])
    # threshold 0 (the default): every label the out-of-fold top class contradicts, d included
    clean0, rep0 = W.clean_labels(lab, oof, 0.0)
    assert list(clean0["image_id"]) == ["a", "e"] and rep0["flagged"] == 3
    folds = W.fold_of(pd.Series([f"img{i}" for i in range(300)]), 5)
    assert set(folds) == set(range(5)) and list(folds) == list(W.fold_of(pd.Series([f"img{i}" for i in range(300)]), 5))


def test_class_cap_keeps_the_least_contradicted_labels_of_an_over_flagged_class():
    import pandas as pd

    from vistarank.training import head_task as H
    from vistarank.training import workflow as W

    k = len(W.CLASSES)
    y = np.repeat([0, 1, 2], 20)
    oof = np.full((60, k), 0.01, np.float32)
    oof[np.arange(60), y] = 0.9
    # class 0: 8 labels contradicted (class 1 on top), their own class given 0.01 .. 0.08
    for j, i in enumerate(range(8)):
        oof[i, 0], oof[i, 1] = 0.01 * (j + 1), 0.8
    oof[40, 2], oof[40, 0] = 0.05, 0.9  # class 2: one contradicted label
    flag = H.suspicious(oof, y, 0.0)
    assert flag.sum() == 9
    # flagged share 9/60 = 0.15; x 1.5 = 0.225 of each class's 20 labels: at most 5 (ceil 4.5)
    capped = H.cap_per_class(oof, y, flag, 1.5)
    assert list(np.where(capped)[0]) == [0, 1, 2, 3, 4, 40]  # class 0's most contradicted five, class 2 untouched
    assert (H.cap_per_class(oof, y, flag, 0.0) == flag).all()  # 0: no cap
    assert (H.cap_per_class(oof, y, flag, 10.0) == flag).all()  # a cap above every class's share changes nothing
    lab = pd.DataFrame({"image_id": [f"i{i}" for i in range(60)], "x": [[0.0]] * 60, "y": y,
                        "noisy": [i < 5 for i in range(60)], "weight": [1.0] * 60})
    clean, rep = W.clean_labels(lab, oof, 0.0, class_cap=1.5)
    assert rep["flagged"] == 6 and rep["flagged_and_noisy"] == 5 and len(clean) == 54
    assert {"i5", "i6", "i7"} <= set(clean["image_id"]) and "i40" not in set(clean["image_id"])


def test_neighbours_back_the_contradictions_of_flipped_labels_not_of_a_lone_scene():
    """The neighbour check (training.clean_neighbours): a flipped label inside a cluster of
    its true class is backed by its neighbours and acted on; a right label that is the only
    one of its scene, which the out-of-fold heads call another class, is not backed and is
    kept (dropping it would lose the scene: the collapse of issue #15 item 4). Relabelling
    gives the flagged label the predicted class."""
    import pandas as pd

    from vistarank.training import head_task as H
    from vistarank.training import workflow as W

    k, rng = len(W.CLASSES), np.random.default_rng(0)
    centres = np.eye(4, 8)  # class 0, class 1, and a lone scene of class 2 far from both
    x = np.concatenate([centres[0] + 0.05 * rng.normal(size=(12, 8)),
                        centres[1] + 0.05 * rng.normal(size=(12, 8)), centres[2][None, :]])
    y = np.array([0] * 12 + [1] * 12 + [2])
    y[3] = 1  # a class-0 image whose label was flipped to 1
    votes = H.neighbour_votes(x, y, 5, k)
    assert votes.shape == (25, k) and np.allclose(votes.sum(axis=1), 1.0)
    assert votes[3, 0] == 1.0  # its five nearest labels are class-0 images
    assert votes[24, 2] == 0.0  # the lone scene has no neighbour of its class
    oof = np.full((25, k), 0.01, np.float32)
    oof[np.arange(25), y] = 0.9
    oof[3, 1], oof[3, 0] = 0.05, 0.9  # the heads contradict the flipped label: class 0
    oof[24, 2], oof[24, 1] = 0.05, 0.9  # ... and the lone scene: class 1, a guess
    assert list(np.where(H.suspicious(oof, y, 0.0))[0]) == [3, 24]
    backed = H.backed(oof, votes)
    assert backed[3] and not backed[24]
    lab = pd.DataFrame({"image_id": [f"i{i}" for i in range(25)], "x": list(x), "y": y, "true_y": np.r_[[0] * 12, [1] * 12, 2],
                        "noisy": [i == 3 for i in range(25)], "weight": [1.0] * 25})
    dropped, rep = W.clean_labels(lab, oof, 0.0, votes=votes)
    assert "i3" not in set(dropped["image_id"]) and "i24" in set(dropped["image_id"]) and len(dropped) == 24
    assert rep["flagged"] == 1 and rep["precision"] == 1.0 and rep["not_backed"] == 1
    no_check, _ = W.clean_labels(lab, oof, 0.0)  # without neighbours the lone scene goes too
    assert len(no_check) == 23 and "i24" not in set(no_check["image_id"])
    fixed, rep = W.clean_labels(lab, oof, 0.0, votes=votes, action="relabel")
    assert len(fixed) == 25 and fixed.set_index("image_id").loc["i3", "y"] == 0 and rep["relabelled_right"] == 1
    assert (fixed["y"].to_numpy() == lab["true_y"].to_numpy()).all()
    # class weights are recomputed on the relabelled budget: the lone class-2 label weighs 12 x a class-0 one
    assert fixed["weight"].iloc[24] == pytest.approx(12 * fixed["weight"].iloc[0])
    with pytest.raises(ValueError, match="relabel"):
        W.clean_labels(lab, oof, 0.0, votes=votes, action="fix")


def test_the_spread_gate_keeps_a_lone_scene_that_the_neighbours_of_another_class_surround():
    """The spread gate (training.clean_spread): a right label of a scene seen once lies far
    from every label; when its nearest labels are all of the class the heads guess, the
    neighbour check backs the guess, and only the predicted class's own spread tells that
    the label is nowhere near that class. A flipped label inside its true class's cluster
    stays flagged."""
    import pandas as pd

    from vistarank.training import head_task as H
    from vistarank.training import workflow as W

    k, rng = len(W.CLASSES), np.random.default_rng(1)
    e = np.eye(8)
    x = np.concatenate([e[0] + 0.05 * rng.normal(size=(12, 8)), e[1] + 0.05 * rng.normal(size=(12, 8)),
                        (e[3] + 0.5 * e[1])[None, :]])  # the lone scene: nearer class 1 than class 0, far from both
    x[3] = e[0]  # a class-0 image at the class's centre, its label flipped to 1
    y = np.array([0] * 12 + [1] * 12 + [2])
    y[3] = 1
    dist = H.class_distances(x, y, k)
    assert dist.shape == (25, k) and np.isinf(dist[24, 2]) and np.isfinite(dist[0, 2])  # class 2: one label
    assert np.isinf(dist[:, 5]).all()  # a class with no label
    assert dist[24, 1] > 0.4 and dist[3, 0] < 0.05
    votes = H.neighbour_votes(x, y, 5, k)
    oof = np.full((25, k), 0.01, np.float32)
    oof[np.arange(25), y] = 0.9
    oof[3, 1], oof[3, 0] = 0.05, 0.9  # the heads contradict the flipped label: class 0
    oof[24, 2], oof[24, 1] = 0.05, 0.9  # ... and the lone scene: class 1, a guess
    assert H.backed(oof, votes)[[3, 24]].all()  # the neighbour check backs both
    near = H.near_predicted(oof, y, dist, 0.9)
    assert near[3] and not near[24]
    assert H.near_predicted(oof, y, dist, 0.0).all()  # 0: no gate
    lab = pd.DataFrame({"image_id": [f"i{i}" for i in range(25)], "x": list(x), "y": y,
                        "noisy": [i == 3 for i in range(25)], "weight": [1.0] * 25})
    gated, rep = W.clean_labels(lab, oof, 0.0, votes=votes, near=near)
    assert set(lab["image_id"]) - set(gated["image_id"]) == {"i3"}
    assert rep["flagged"] == 1 and rep["not_near"] == 1 and rep["not_backed"] == 0
    ungated, rep = W.clean_labels(lab, oof, 0.0, votes=votes)
    assert set(lab["image_id"]) - set(ungated["image_id"]) == {"i3", "i24"} and "not_near" not in rep


def test_the_outlier_rule_drops_a_flipped_outdoor_scene_and_keeps_a_lone_other_label():
    """The outlier rule (training.clean_outliers): an outdoor scene seen once, flipped to a
    property area, sits among no label of the area nor of ``other``: the neighbours do not
    back the heads' ``other`` and the spread gate keeps it; it is unlike every label of its
    area, so it is flagged. A right ``other`` label of a scene seen once that the heads call
    an area stays: ``other`` is many scenes, and such a label is never its outlier."""
    import pandas as pd

    from vistarank.training import head_task as H
    from vistarank.training import workflow as W

    k, other, rng = len(W.CLASSES), W.CLASSES.index("other"), np.random.default_rng(2)
    e = np.eye(10)
    x = np.concatenate([e[0] + 0.05 * rng.normal(size=(12, 10)), e[1] + 0.05 * rng.normal(size=(12, 10)),
                        e[2] + 0.05 * rng.normal(size=(12, 10)),
                        (e[5] + 0.3 * e[1])[None, :], (e[6] + 0.3 * e[1])[None, :]])
    y = np.array([0] * 12 + [1] * 12 + [other] * 12 + [0, other])  # i36: a flip (truly other); i37: right
    dist = H.class_distances(x, y, k)
    out = W.outliers(y, dist, 0.9)
    assert out[36] and not out[37] and not out[24:36].any()  # `other` never has outliers
    assert not H.within_own_spread(y, dist, 0.9)[37] and H.within_own_spread(y, dist, 0.0).all()
    oof = np.full((38, k), 0.01, np.float32)
    oof[np.arange(38), y] = 0.9
    oof[36, 0], oof[36, other] = 0.05, 0.9  # the heads say `other`: right
    oof[37, other], oof[37, 1] = 0.05, 0.9  # ... and guess an area for the lone `other` scene
    votes = H.neighbour_votes(x, y, 5, k)
    near = H.near_predicted(oof, y, dist, 0.9)
    assert not H.backed(oof, votes)[36] and not near[36]  # neither check flags the flip
    assert H.backed(oof, votes)[37] and not near[37]  # the gate keeps the lone scene
    lab = pd.DataFrame({"image_id": [f"i{i}" for i in range(38)], "x": list(x), "y": y,
                        "noisy": [i == 36 for i in range(38)], "weight": [1.0] * 38})
    cleaned, rep = W.clean_labels(lab, oof, 0.0, votes=votes, near=near, outlier=out)
    assert set(lab["image_id"]) - set(cleaned["image_id"]) == {"i36"}
    assert rep["flagged"] == 1 and rep["outliers"] == 1 and rep["precision"] == 1.0 and rep["not_near"] == 1
    before, rep = W.clean_labels(lab, oof, 0.0, votes=votes, near=near)
    assert len(before) == 38 and rep["flagged"] == 0 and "outliers" not in rep
    # other_or_drop (the config's default): the flip the heads call `other` becomes `other`, so its scene stays
    # in the budget; a flagged label they call an area is dropped (i0, made a contradiction here)
    lab["true_y"] = np.where(lab["noisy"], other, y)
    oof2 = oof.copy()
    oof2[0, 0], oof2[0, 1] = 0.05, 0.9
    fixed, rep = W.clean_labels(lab, oof2, 0.0, near=near, outlier=out, action="other_or_drop")
    assert set(lab["image_id"]) - set(fixed["image_id"]) == {"i0"}
    assert fixed.set_index("image_id").loc["i36", "y"] == other and rep["relabelled"] == 1
    assert rep["relabelled_right"] == 1 and rep["flagged"] == 2
    assert "1 made other, 1 dropped" in W._acted(rep)
    tc = type("TC", (), {"clean_neighbours": 5, "clean_spread": 0.9, "clean_outliers": 0.9})
    v2, n2, o2 = W.cleaning_evidence(tc, x, y, oof)  # the stage's evidence at these settings: the same
    assert (v2 == votes).all() and (n2 == near).all() and (o2 == out).all()
    tc.clean_outliers = 0.0
    assert W.cleaning_evidence(tc, x, y, oof)[2] is None


def test_gallery_order_puts_distinct_areas_first():
    import pandas as pd

    from vistarank.udfs.heads import gallery_order

    pdf = pd.DataFrame({"sale_id": ["s"] * 5, "image_id": list("abcde"),
                        "area": ["bedroom", "bedroom", "pool", "bedroom", "facade"],
                        "score": [9.0, 8.5, 6.0, 8.0, 5.0]})
    out = gallery_order(pdf, 3)
    assert list(out["image_id"]) == ["a", "c", "e", "b", "d"]  # bedroom, pool, facade, then by score
    assert list(out["rank"]) == [1, 2, 3, 4, 5]
    assert list(gallery_order(pdf, 0)["image_id"]) == ["a", "b", "d", "c", "e"]


def test_gallery_report_by_hand(spark):
    """The gallery figure: of the sales with 6+ photos, the share whose first gallery image
    is among their three best by the hidden score; smaller sales are left out."""
    from vistarank.training import workflow as W

    gal, src, truth = [], [], []
    for sale, first_hidden_rank in (("a", 1), ("b", 3), ("c", 4), ("small", 1)):
        n = 4 if sale == "small" else 6
        for i in range(n):  # image i has hidden score n - i: image 0 is the best
            img = f"{sale}{i}"
            src.append((img, f"u/{img}"))
            truth.append((f"u/{img}", float(n - i)))
        order = [first_hidden_rank - 1] + [i for i in range(n) if i != first_hidden_rank - 1]
        gal += [(sale, r + 1, f"{sale}{i}") for r, i in enumerate(order)]
    g = spark.createDataFrame(gal, "sale_id string, rank int, image_id string")
    out = W.gallery_report(g, spark.createDataFrame(src, "image_id string, uri string"),
                           spark.createDataFrame(truth, "uri string, aesthetic double"))
    assert out["n"] == 3 and out["first_in_hidden_top3"] == pytest.approx(2 / 3)


@pytest.mark.pipeline
def test_train_head_stage_on_the_tiny_world(spark, labelled):
    import json

    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.jobs import train_head

    # Lean: the fine-tuning comparison (two more barrier runs on the images, about a minute)
    # is the slow pipeline test's (fine_tune_report_checks); its launches are tested above.
    # The flaw detector (off by default) on: its model rides inside the aesthetics head, which
    # label_images then applies in its workers. Two folds choose the score cap (5 by default).
    tc = labelled.training
    cfg = labelled.model_copy(update={"training": tc.model_copy(update={
        "fine_tune": tc.fine_tune.model_copy(update={"enabled": False}),
        "flaws": tc.flaws.model_copy(update={"images": 300}), "aesthetics_cap_folds": 2})})
    res = train_head.run(spark, cfg)
    n_img = io.read(spark, cfg, T.IMAGE_LABELS).where(F.col("model_version") == cfg.model.model_version).count()
    assert res.outputs["image_areas"] == n_img and res.outputs["image_aesthetics"] == n_img
    scores = io.read(spark, cfg, T.IMAGE_AESTHETICS).select("score").toPandas()["score"]
    assert scores.between(1, 10).all()
    with open(os.path.join(cfg.reports_dir(), "heads", "evaluation.json")) as fh:
        report = json.load(fh)
    assert 0 <= report["areas_cleaned"]["top1"] <= report["areas_cleaned"]["top5"] <= 1
    assert report["areas_cleaned"]["top1"] > 1 / 9  # better than chance over 9 classes
    assert report["cleaning"]["flagged"] <= report["cleaning"]["labels"]
    assert os.path.getsize(os.path.join(cfg.reports_dir(), "heads", "areas_confusion.png")) > 1000
    ev = io.read(spark, cfg, T.HEAD_EVAL).toPandas()  # the same evaluation as a Delta table
    top1 = ev[(ev.task == "areas") & (ev.metric == "top1")].set_index("arm")["value"]
    assert set(top1.index) == {"noisy", "true_labels", "cleaned"} and "areas_images" not in report
    assert top1["true_labels"] == pytest.approx(report["areas_true_labels"]["top1"])
    assert report["areas_true_labels"]["top1"] > 1 / 9  # the label budget with no flipped label
    assert top1["cleaned"] == pytest.approx(report["areas_cleaned"]["top1"])
    assert len(ev[(ev.task == "areas") & (ev.arm == "cleaned") & (ev.metric == "recall")]) == 9  # one per class
    assert ev[ev.task == "aesthetics"].set_index("metric")["value"]["emd"] == pytest.approx(report["aesthetics"]["emd"])
    # the aesthetics head reads the embedding and the 45 quality statistics, scaled inside the saved model
    import keras

    from vistarank.training.head_task import load_manifest
    from vistarank.udfs.quality import N_QUALITY

    # ... and the log probabilities of the self-supervised flaw detector saved inside it
    assert report["aesthetics"]["inputs"] == "embedding+quality+flaws"
    assert report["aesthetics"]["flaw_detector"]["examples"] > 0
    manifest = json.loads(load_manifest(cfg, cfg.model.model_version))
    assert len(manifest["quality_mean"]) == N_QUALITY
    # the score is capped where the out-of-fold heads stop ranking (or not at all): never above
    cap = manifest["score_cap"]
    assert (cap is None) == (report["aesthetics"]["cap_share"] == 1.0)
    if cap is not None:
        assert scores.max() <= cap + 1e-6
    metrics = ev[ev.task == "aesthetics"].set_index("metric")["value"]
    assert metrics["spearman_mean"] == pytest.approx(report["aesthetics"]["spearman_mean"])
    emb_dim = len(io.read(spark, cfg, T.IMAGE_LABELS).select("embedding").first()[0])
    aes_model = keras.models.load_model(manifest["aesthetics"], compile=False)
    assert aes_model.input_shape == (None, emb_dim + N_QUALITY)
    assert keras.models.load_model(manifest["area"], compile=False).input_shape == (None, emb_dim)
    gal = io.read(spark, cfg, T.SALE_GALLERY)
    per_sale = gal.groupBy("sale_id").agg(F.count("*").alias("n"), F.max("rank").alias("r"))
    assert per_sale.where("n != r").count() == 0
    assert not train_head.needed(spark, cfg)
    _label_images_applies_the_heads_in_its_pass(spark, cfg)


def fine_tune_report_checks(report: dict, ev) -> None:
    """The stage's fine-tuning comparison (training.fine_tune.enabled): its report and its
    head_evaluation rows (``ev``, pandas). Run by the slow pipeline test."""
    top1 = ev[(ev.task == "areas") & (ev.metric == "top1")].set_index("arm")["value"]
    assert set(top1.index) == {"noisy", "true_labels", "cleaned", "transfer_head", "fine_tuned", "from_scratch"}
    assert top1["from_scratch"] == pytest.approx(report["areas_images"]["from_scratch"]["top1"])
    ai = report["areas_images"]  # fine-tuned and from-scratch networks against the frozen-feature head
    assert 0 < ai["eval_images"] <= 120
    for arm in ("transfer_head", "fine_tuned", "from_scratch"):
        assert 0 <= ai[arm]["top1"] <= ai[arm]["top5"] <= 1
    assert [p["train"] for p in ai["fine_tuned"]["phases"]] == ["head", "top"]
    head_w, top_w = (p["trainable_weights"] for p in ai["fine_tuned"]["phases"])
    assert head_w == 6 and top_w > head_w  # phase 1: the head's 3 dense layers only; phase 2: + the backbone's top
    assert ai["from_scratch"]["phases"][0]["trainable_weights"] > top_w
    assert ai["fine_tuned"]["top1"] > 1 / 9


def _label_images_applies_the_heads_in_its_pass(spark, cfg):
    """Images that arrive after train_head: label_images labels them and, in the same pass,
    writes their areas and aesthetics with the registered heads (the same values the
    backfill over stored embeddings gave)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.jobs import label_images

    before = {t.name: io.read(spark, cfg, t).toPandas().set_index("image_id") for t in (T.IMAGE_AREAS,
                                                                                         T.IMAGE_AESTHETICS)}
    new = (io.read(spark, cfg, T.IMAGE_LABELS).where(F.col("model_version") == cfg.model.model_version)
           .select("image_id").orderBy("image_id").limit(7).toPandas()["image_id"])
    cond = F.col("image_id").isin(list(new))
    mine = F.col("model_version") == cfg.model.model_version
    DeltaTable.forPath(spark, io.table_path(cfg, T.IMAGE_LABELS)).delete(cond & mine)  # as if these images were new
    for t in (T.IMAGE_AREAS, T.IMAGE_AESTHETICS):
        DeltaTable.forPath(spark, io.table_path(cfg, t)).delete(cond)
    res = label_images.run(spark, cfg)
    assert res.outputs["image_labels"] == 7
    assert res.outputs["image_areas"] == 7 and res.outputs["image_aesthetics"] == 7
    areas = io.read(spark, cfg, T.IMAGE_AREAS).where(cond).toPandas().set_index("image_id").sort_index()
    aes = io.read(spark, cfg, T.IMAGE_AESTHETICS).where(cond).toPandas().set_index("image_id").sort_index()
    old_a, old_s = before["image_areas"].loc[areas.index], before["image_aesthetics"].loc[aes.index]
    assert list(areas["area"]) == list(old_a["area"])
    assert (areas["model_version"] == cfg.training.model_version).all()
    np.testing.assert_allclose(aes["score"].to_numpy(), old_s["score"].to_numpy(), rtol=1e-4)
    # images labelled without their heads' outputs (a lost cached chunk, or labelled before
    # the heads existed) are filled from their stored embeddings by the next run
    for t in (T.IMAGE_AREAS, T.IMAGE_AESTHETICS):
        DeltaTable.forPath(spark, io.table_path(cfg, t)).delete(cond)
    res = label_images.run(spark, cfg)
    assert res.outputs["image_labels"] == 0
    assert res.outputs["image_areas"] == 7 and res.outputs["image_aesthetics"] == 7
    assert label_images.run(spark, cfg).outputs.get("image_areas", 0) == 0
    _a_kill_between_the_head_tables_loses_nothing(spark, cfg, cond, mine)


def _a_kill_between_the_head_tables_loses_nothing(spark, cfg, cond, mine):
    """image_areas and image_aesthetics are two commits: a run killed after the first leaves
    the second for the rerun, and either table missing alone is filled by the next run."""
    import pytest
    from delta.tables import DeltaTable

    from vistarank import io
    from vistarank import tables as T
    from vistarank.jobs import label_images

    def count(t):  # this model version's labels; the heads' one version of areas and scores
        return io.read(spark, cfg, t).where(cond & mine if t is T.IMAGE_LABELS else cond).count()

    DeltaTable.forPath(spark, io.table_path(cfg, T.IMAGE_LABELS)).delete(cond & mine)  # new images again
    for t in (T.IMAGE_AREAS, T.IMAGE_AESTHETICS):
        DeltaTable.forPath(spark, io.table_path(cfg, t)).delete(cond)
    real = label_images.io.insert_new

    def dying(df, c, table):
        if table.name == T.IMAGE_AESTHETICS.name:
            raise RuntimeError("killed between the head tables")
        return real(df, c, table)

    label_images.io.insert_new = dying
    try:
        with pytest.raises(RuntimeError, match="killed between"):
            label_images.run(spark, cfg)
    finally:
        label_images.io.insert_new = real
    assert count(T.IMAGE_LABELS) == 7 and count(T.IMAGE_AREAS) == 7 and count(T.IMAGE_AESTHETICS) == 0
    res = label_images.run(spark, cfg)
    assert res.outputs["image_labels"] == 0
    assert res.outputs["image_aesthetics"] == 7 and res.outputs["image_areas"] == 0
    # and the other way round: scores kept, areas lost
    DeltaTable.forPath(spark, io.table_path(cfg, T.IMAGE_AREAS)).delete(cond)
    res = label_images.run(spark, cfg)
    assert res.outputs["image_areas"] == 7 and res.outputs["image_aesthetics"] == 0
    assert count(T.IMAGE_AREAS) == 7 and count(T.IMAGE_AESTHETICS) == 7
