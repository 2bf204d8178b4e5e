"""The data-parallel training loop that runs inside each Spark barrier task.

One loop (:func:`train_rank`), two collective backends behind :class:`TfBackend` and
:class:`HorovodBackend`:
- ``tf``: ``MultiWorkerMirroredStrategy`` (TF_CONFIG from the barrier rendezvous) with a
  custom loop (``strategy.run`` + ``optimizer.apply_gradients``; ``model.fit`` under this
  strategy fails on Keras 3, keras-team/keras#20585);
- ``horovod``: ``horovod.tensorflow`` over Gloo: a ``DistributedGradientTape`` averages
  the gradients, rank 0's initial weights (and optimizer state after the first step) are
  broadcast. Rank 0 serves Horovod's HTTP rendezvous on the port it published through the
  barrier's ``allGather``; every rank gets its HOROVOD_RANK/SIZE/LOCAL_*/CROSS_* from the
  barrier's task list. It runs in the pinned TF 2.15 + horovod environment
  (``training.horovod_python``), whose tf.keras 2.15 builds the same head; rank 0 saves the
  weights (npz) and the driver rebuilds the Keras 3 model from them.

Inputs: ``features`` (a frozen backbone's embeddings, ``x``) or ``images`` (encoded bytes,
``content``, decoded by the scoring job's decode path, then augmented: random crop, flip,
small rotation) for fine-tuning. Training runs in phases (``spec['phases']``): each names
what trains (``head``: frozen backbone; ``top``: the backbone from
``spec['unfreeze_from']`` on, BatchNorm kept frozen; ``all``), its epochs and learning rate.

Each rank reads its own shard of a Parquet snapshot (files i with i % n == rank) with
pyarrow into ``tf.data`` (shuffled per epoch, batched, prefetched). Ranks agree on the
number of steps per epoch through the barrier's ``allGather`` of shard sizes, so no rank
waits for a step another never takes. Training runs in a child process of the task
with a time limit; the child ends when its task goes away, so a stuck collective fails
the Spark job instead of hanging it.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from typing import Iterator


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _shard_files(folder: str, rank: int, n: int) -> list[str]:
    files = sorted(f for f in os.listdir(folder) if f.endswith(".parquet"))
    return [os.path.join(folder, f) for i, f in enumerate(files) if i % n == rank]


def _labels(t, label_kind: str):
    import numpy as np

    y = t.column("y").to_numpy(zero_copy_only=False)
    return np.stack(y).astype(np.float32) if label_kind != "softmax" else y.astype(np.int64)


def read_shard(folder: str, rank: int, n: int, label_kind: str):
    """(x float32 [rows, dim], y, weight float32) from the Parquet files of this rank."""
    import numpy as np
    import pyarrow.parquet as pq

    xs, ys, ws = [], [], []
    for path in _shard_files(folder, rank, n):
        t = pq.read_table(path, columns=["x", "y", "weight"])
        if t.num_rows == 0:
            continue
        xs.append(np.stack(t.column("x").to_numpy(zero_copy_only=False)).astype(np.float32))
        ys.append(_labels(t, label_kind))
        ws.append(t.column("weight").to_numpy().astype(np.float32))
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0), np.zeros(0, np.float32)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def read_image_shard(folder: str, rank: int, n: int, label_kind: str, size: int):
    """(images uint8 [rows, size, size, 3], y, weight) of this rank: ``content`` decoded by the
    scoring job's decode path (undecodable images are skipped, as in scoring)."""
    import numpy as np
    import pyarrow.parquet as pq

    from vistarank.udfs.scoring import decode_for_model

    xs, ys, ws = [], [], []
    for path in _shard_files(folder, rank, n):
        t = pq.read_table(path, columns=["content", "y", "weight"])
        if t.num_rows == 0:
            continue
        dec = [decode_for_model(b, size) for b in t.column("content").to_pylist()]
        ok = np.array([d is not None for d in dec])
        if ok.any():
            xs.append(np.stack([d for d in dec if d is not None]).astype(np.uint8))
            ys.append(_labels(t, label_kind)[ok])
            ws.append(t.column("weight").to_numpy().astype(np.float32)[ok])
    if not xs:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros(0), np.zeros(0, np.float32)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def weights_digest(model) -> float:
    """A number that two workers with identical weights share (sum of |w| in float64)."""
    import numpy as np

    return float(sum(np.abs(np.asarray(w, dtype=np.float64)).sum() for w in model.get_weights()))


def shard_rows(folder: str, rank: int, n: int) -> int:
    """Rows in this rank's files, from the Parquet footers (no data read)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in _shard_files(folder, rank, n))


# --------------------------------------------------------------------------- backends
class TfBackend:
    """tf.distribute: MultiWorkerMirroredStrategy (one replica per worker)."""

    name = "tf"

    def __init__(self, rank: int, n: int, peers: list[str]) -> None:
        if n > 1:
            os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": peers},
                                                  "task": {"type": "worker", "index": rank}})
        import tensorflow as tf

        self.tf = tf
        self.n = n
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy() if n > 1 else tf.distribute.get_strategy()

    def scope(self):
        return self.strategy.scope()

    def make_step(self, model, opt, loss_fn, batch_size: int):
        tf, strategy, global_batch = self.tf, self.strategy, batch_size * self.n

        @tf.function
        def step(xb, yb, wb):
            def replica(xb, yb, wb):
                with tf.GradientTape() as tape:
                    per = loss_fn(yb, model(xb, training=True)) * wb
                    loss = tf.reduce_sum(per) / global_batch
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply_gradients(zip(grads, model.trainable_variables))
                return loss
            return strategy.reduce("SUM", strategy.run(replica, args=(xb, yb, wb)), axis=None)

        return step

    def after_first_step(self, model, opt) -> None:
        pass  # MirroredVariables start equal and stay equal


def _host_plan(peers: list[str]) -> list[dict]:
    """Horovod's slot info per rank from the barrier's host:port list (as
    horovod.runner.common.util.hosts.get_host_assignments: local ranks per host, cross
    ranks per local rank)."""
    hosts = [p.rsplit(":", 1)[0] for p in peers]
    local_rank = [hosts[:i].count(h) for i, h in enumerate(hosts)]
    plan = []
    for i, h in enumerate(hosts):
        same_local = [j for j in range(len(hosts)) if local_rank[j] == local_rank[i]]
        plan.append({"hostname": h, "rank": i, "size": len(hosts), "local_rank": local_rank[i],
                     "local_size": hosts.count(h), "cross_rank": same_local.index(i), "cross_size": len(same_local)})
    return plan


def _iface_of(address: str):
    """The network interface that holds ``address`` (Gloo binds to it), or None."""
    try:
        import psutil

        ip = socket.gethostbyname(address)
        for name, addrs in psutil.net_if_addrs().items():
            if any(a.family == socket.AF_INET and a.address == ip for a in addrs):
                return name
    except (OSError, ImportError):
        pass
    return None


class HorovodBackend:
    """horovod.tensorflow over Gloo, rendezvous served by rank 0."""

    name = "horovod"

    def __init__(self, rank: int, n: int, peers: list[str], timeout_s: float) -> None:
        import time

        try:
            from horovod.runner.common.util.hosts import SlotInfo
            from horovod.runner.http.http_server import RendezvousHandler, RendezvousHTTPServer
        except ImportError as e:
            raise RuntimeError("training.backend=horovod needs horovod in the worker's environment "
                               "(training.horovod_python; build it with `make horovod-env`): " + str(e)) from None
        plan = _host_plan(peers)
        rdv_host, rdv_port = peers[0].rsplit(":", 1)
        if rank == 0:
            server = RendezvousHTTPServer(("", int(rdv_port)), RendezvousHandler, 0)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            server.init([SlotInfo(**p) for p in plan])
        else:  # the rendezvous retries only briefly: wait until rank 0 serves it
            t0 = time.monotonic()
            while True:
                try:
                    socket.create_connection((rdv_host, int(rdv_port)), timeout=2).close()
                    break
                except OSError:
                    if time.monotonic() - t0 > timeout_s:
                        raise RuntimeError(f"worker {rank}: no horovod rendezvous at {peers[0]}") from None
                    time.sleep(0.2)
        me = plan[rank]
        env = {"HOROVOD_HOSTNAME": me["hostname"], "HOROVOD_RANK": me["rank"], "HOROVOD_SIZE": me["size"],
               "HOROVOD_LOCAL_RANK": me["local_rank"], "HOROVOD_LOCAL_SIZE": me["local_size"],
               "HOROVOD_CROSS_RANK": me["cross_rank"], "HOROVOD_CROSS_SIZE": me["cross_size"],
               "HOROVOD_GLOO_RENDEZVOUS_ADDR": rdv_host, "HOROVOD_GLOO_RENDEZVOUS_PORT": rdv_port,
               "HOROVOD_CONTROLLER": "gloo", "HOROVOD_CPU_OPERATIONS": "gloo",
               "HOROVOD_GLOO_TIMEOUT_SECONDS": int(timeout_s)}
        iface = _iface_of(me["hostname"])
        if iface:
            env["HOROVOD_GLOO_IFACE"] = iface
        os.environ.update({k: str(v) for k, v in env.items()})
        import horovod.tensorflow as hvd
        import tensorflow as tf

        hvd.init()
        if hvd.size() != n or hvd.rank() != rank:
            raise RuntimeError(f"horovod sees rank {hvd.rank()} of {hvd.size()}, the barrier {rank} of {n}")
        self.hvd, self.tf, self.n = hvd, tf, n

    def scope(self):
        return contextlib.nullcontext()

    def make_step(self, model, opt, loss_fn, batch_size: int):
        tf, hvd = self.tf, self.hvd
        self.hvd.broadcast_variables(model.variables, root_rank=0)

        @tf.function
        def step(xb, yb, wb):
            with tf.GradientTape() as tape:
                per = loss_fn(yb, model(xb, training=True)) * wb
                loss = tf.reduce_sum(per) / batch_size
            tape = hvd.DistributedGradientTape(tape)  # averages: the global batch's mean gradient
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return hvd.allreduce(loss, op=hvd.Average)

        return step

    def after_first_step(self, model, opt) -> None:
        variables = opt.variables() if callable(opt.variables) else opt.variables
        self.hvd.broadcast_variables(list(variables), root_rank=0)


# --------------------------------------------------------------------------- models
def build_model(spec: dict, input_dim: int):
    """The head alone (``features``), or backbone + head (``images``; the backbone is the
    scoring model's file, or the same architecture freshly initialised when
    ``spec['from_scratch']``). Returns (model, backbone or None)."""
    from vistarank.training.heads import build_head

    head_args = (spec["n_out"], spec["kind"], tuple(spec["hidden"]), spec["dropout"], spec["seed"])
    if spec.get("input", "features") == "features":
        return build_head(input_dim, *head_args), None
    import keras

    from vistarank.vision.models import ResolvedModel, features_output, load_keras

    rm = ResolvedModel.from_json(spec["backbone"])
    with open(rm.labels_path) as fh:
        n_labels = sum(1 for line in fh if line.strip())
    backbone = load_keras(rm, n_labels)
    if spec.get("from_scratch"):
        backbone = keras.models.clone_model(backbone)  # same architecture, fresh initial weights
    for layer in backbone.layers:  # batch statistics over the global batch: workers' moving stats stay equal
        if type(layer).__name__ == "BatchNormalization":
            layer.synchronized = True
    feat = features_output(backbone, rm.embedding_layer)
    trunk = keras.Model(backbone.inputs, feat, name="backbone")
    head = build_head(int(feat.shape[-1]), *head_args)
    inp = keras.Input(trunk.input_shape[1:], name="image")
    return keras.Model(inp, head(trunk(inp)), name=f"finetune_{spec['kind']}"), trunk


def set_trainable(model, backbone, what: str, unfreeze_from) -> int:
    """``head``: backbone frozen; ``top``: the backbone from layer ``unfreeze_from`` (a name,
    or None: the top third of its weighted layers) on, BatchNorm frozen (it then runs in
    inference mode, as in Keras' fine-tuning guide); ``all``: everything. Returns the number
    of trainable weights."""
    if backbone is not None:
        backbone.trainable = what != "head"
        if what == "top":
            layers = backbone.layers
            if unfreeze_from:
                names = [la.name for la in layers]
                if unfreeze_from not in names:
                    raise ValueError(f"training.fine_tune.unfreeze_from={unfreeze_from!r} is not a layer of the "
                                     f"backbone (its last layers: {names[-8:]})")
                start = names.index(unfreeze_from)
            else:
                weighted = [i for i, la in enumerate(layers) if la.weights]
                start = weighted[len(weighted) - max(1, len(weighted) // 3)]
            for i, la in enumerate(layers):
                la.trainable = i >= start and type(la).__name__ != "BatchNormalization"
    return len(model.trainable_weights)


def _augmenter(spec: dict, seed: int):
    """Random crop (zoom in by up to ``crop``), horizontal flip, small rotation: Keras layers."""
    import keras

    a = spec.get("augment") or {}
    if not a:
        return None
    return keras.Sequential([
        keras.layers.RandomZoom((-a.get("crop", 0.15), 0.0), fill_mode="reflect", seed=seed),
        keras.layers.RandomFlip("horizontal", seed=seed + 1),
        keras.layers.RandomRotation(a.get("rotation", 0.03), fill_mode="reflect", seed=seed + 2),
    ], name="augment")


def learning_rate(keras, phase: dict, schedule: str, steps: int):
    """The phase's learning rate: constant, or cosine-decayed to 0 over the phase's steps
    (``training.lr_schedule`` for the heads on embeddings, ``training.fine_tune.lr_schedule``
    for the image networks): a small head at a constant Adam rate still jumps between
    minima at its last step, so its held-out figures swing with the seed and it memorises
    flipped labels; decayed, it settles (README, issue #15)."""
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(phase["learning_rate"], max(1, phase["epochs"] * steps))
    if schedule != "constant":
        raise ValueError(f"unknown training.lr_schedule {schedule!r}")
    return phase["learning_rate"]


def train_rank(spec: dict, rank: int, n: int, peers: list[str], steps: int) -> dict:
    """Train on this rank's shard (in a fresh process: TF configures collectives once per
    process); returns its metrics and weights digest."""
    images = spec.get("input", "features") == "images"
    if images:
        rm_size = json.loads(spec["backbone"])["input_size"]
        x, y, w = read_image_shard(spec["data"], rank, n, spec["kind"], rm_size)
    else:
        x, y, w = read_shard(spec["data"], rank, n, spec["kind"])
    if spec.get("fail_rank") == rank:
        raise RuntimeError(f"worker {rank} failed on purpose (test)")
    if spec["backend"] == "horovod":
        backend = HorovodBackend(rank, n, peers, spec["timeout_s"])
    elif spec["backend"] == "tf":
        backend = TfBackend(rank, n, peers)
    else:
        raise ValueError(f"unknown training.backend {spec['backend']!r}")
    if images and backend.name == "horovod":
        raise RuntimeError("fine-tuning (input=images) runs on the tf backend: the horovod environment's "
                           "tf.keras 2.15 cannot load Keras 3 backbone files")
    import keras
    import tensorflow as tf

    from vistarank.training.heads import loss_for

    keras.utils.set_random_seed(spec["seed"])
    with backend.scope():
        model, backbone = build_model(spec, 0 if images else x.shape[1])
    loss_fn = loss_for(spec["kind"])
    prep = None
    if images:
        from vistarank.vision.models import ResolvedModel, preprocess

        mode = ResolvedModel.from_json(spec["backbone"]).preprocessing
        prep = lambda b: preprocess(b, mode)  # noqa: E731
    phases = spec.get("phases") or [{"train": "all", "epochs": spec["epochs"],
                                     "learning_rate": spec["learning_rate"]}]
    losses, first = [], True
    for p_i, phase in enumerate(phases):
        n_trainable = set_trainable(model, backbone, phase["train"], spec.get("unfreeze_from"))
        with backend.scope():
            opt = keras.optimizers.Adam(learning_rate(keras, phase, spec.get("lr_schedule", "constant"), steps))
        step = backend.make_step(model, opt, loss_fn, spec["batch_size"])
        ds = (tf.data.Dataset.from_tensor_slices((x, y, w))
              .shuffle(len(x), seed=spec["seed"] + rank + 1000 * p_i, reshuffle_each_iteration=True)
              .batch(spec["batch_size"], drop_remainder=True).take(steps))
        aug = _augmenter(spec, spec["seed"] + rank) if images else None
        if images:
            def to_input(xb, yb, wb):  # augment (0..255 floats), then the model's preprocessing
                xb = tf.cast(xb, tf.float32)
                return prep(aug(xb, training=True) if aug is not None else xb), yb, wb

            # Mapped in order: the augmentation layers draw from seeded, stateful generators,
            # and a parallel map hands the draws to the batches in a varying order (a rerun
            # then trains on other crops). prefetch still overlaps it with the steps.
            ds = ds.map(to_input)
        ds = ds.prefetch(tf.data.AUTOTUNE)
        for _ in range(phase["epochs"]):
            total = 0.0
            for xb, yb, wb in ds:
                total += float(step(xb, yb, wb))
                if first:
                    backend.after_first_step(model, opt)
                    first = False
            losses.append(total / steps)
        phase["trainable_weights"] = n_trainable
    out = {"rank": rank, "rows": len(x), "steps_per_epoch": steps, "losses": losses, "backend": backend.name,
           "digest": weights_digest(model), "phases": phases}
    if rank == 0 and spec.get("artifact"):
        os.makedirs(os.path.dirname(spec["artifact"]), exist_ok=True)
        if keras.__version__.startswith("3."):
            model.save(spec["artifact"])
            out["artifact"] = spec["artifact"]
        else:  # tf.keras 2 (horovod env): weights only; the driver rebuilds the Keras 3 model
            import numpy as np

            path = spec["artifact"] + ".weights.npz"
            np.savez(path, *model.get_weights())
            out["weights_npz"] = path
    return out


def _watch_parent(parent: int, timeout_s: float) -> None:
    """End this process when its Spark task is gone or the time limit passes (a stuck
    collective must not outlive the job)."""
    import time

    def run() -> None:
        t0 = time.monotonic()
        while True:
            if os.getppid() != parent or time.monotonic() - t0 > timeout_s:
                os._exit(124)
            time.sleep(1.0)

    threading.Thread(target=run, daemon=True).start()


def worker_python(spec: dict) -> str:
    """The interpreter of the training child: this one (tf backend), or the horovod
    environment's (``spec['python']``; a relative path resolves in the task's working
    directory, where ``spark.archives`` unpacks a shipped environment)."""
    import sys

    py = spec.get("python") or sys.executable
    path = os.path.abspath(py)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"training.backend={spec['backend']}: worker interpreter {py} not found "
                           f"(cwd {os.getcwd()}); build it with `make horovod-env`")
    return path


def barrier_fn(spec_json: str):
    """The mapPartitions function of the barrier stage (captures only the JSON spec).

    The task agrees with its peers on steps per epoch and on host:port, then trains in a
    child Python process (a reused Spark worker may already hold a TensorFlow runtime,
    whose collectives can be configured only once per process)."""

    def run(_: Iterator) -> Iterator[str]:
        import subprocess

        from pyspark import BarrierTaskContext

        spec = json.loads(spec_json)
        ctx = BarrierTaskContext.get()
        rank = ctx.partitionId()
        n = len(ctx.getTaskInfos())
        host = ctx.getTaskInfos()[rank].address.split(":")[0]
        counts = [int(c) for c in ctx.allGather(str(shard_rows(spec["data"], rank, n)))]
        steps = min(counts) // spec["batch_size"]
        if steps == 0:
            raise ValueError(f"a shard has fewer rows than training.batch_size={spec['batch_size']}: "
                             f"shard sizes {counts}")
        peers = list(ctx.allGather(f"{host}:{free_port()}"))
        job = json.dumps({"spec": spec, "rank": rank, "n": n, "peers": peers, "steps": steps})
        try:
            proc = subprocess.run([worker_python(spec), "-m", "vistarank.udfs.train_worker"], input=job,
                                  text=True, capture_output=True, timeout=spec["timeout_s"])
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"worker {rank} ran past training.timeout_s={spec['timeout_s']}") from None
        if proc.returncode != 0:
            raise RuntimeError(f"worker {rank} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        yield proc.stdout.strip().splitlines()[-1]

    return run


def main() -> None:
    """Child process: read the job from stdin, train, print the result as the last line."""
    import sys

    job = json.loads(sys.stdin.read())
    _watch_parent(os.getppid(), job["spec"]["timeout_s"])
    result = train_rank(job["spec"], job["rank"], job["n"], job["peers"], job["steps"])
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
