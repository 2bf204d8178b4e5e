"""The data-parallel training loop that runs inside each Spark barrier task.

One loop, collective backends behind it:
- ``tf``: ``MultiWorkerMirroredStrategy`` (TF_CONFIG from the barrier rendezvous) with a
  custom loop (``strategy.run`` + ``optimizer.apply_gradients``; ``model.fit`` under this
  strategy fails on Keras 3, keras-team/keras#20585);
- ``horovod``: not in this environment (TF 2.21): it needs the pinned TF 2.15 + horovod
  0.28.1 environment; asking for it here fails with that message.

Each rank reads its own shard of a Parquet snapshot (files i with i % n == rank) with
pyarrow into ``tf.data`` (shuffled per epoch, batched, prefetched). Ranks agree on the
number of steps per epoch through the barrier's ``allGather`` of shard sizes, so no rank
waits for a step another never takes. Training runs in a child process of the task
with a time limit; the child ends when its task goes away, so a stuck collective fails
the Spark job instead of hanging it.
"""
from __future__ import annotations

import json
import os
import socket
import threading
from typing import Iterator


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def read_shard(folder: str, rank: int, n: int, label_kind: str):
    """(x float32 [rows, dim], y, weight float32) from the Parquet files of this rank."""
    import numpy as np
    import pyarrow.parquet as pq

    files = sorted(f for f in os.listdir(folder) if f.endswith(".parquet"))
    mine = [os.path.join(folder, f) for i, f in enumerate(files) if i % n == rank]
    xs, ys, ws = [], [], []
    for path in mine:
        t = pq.read_table(path, columns=["x", "y", "weight"])
        if t.num_rows == 0:
            continue
        xs.append(np.stack(t.column("x").to_numpy(zero_copy_only=False)).astype(np.float32))
        y = t.column("y").to_numpy(zero_copy_only=False)
        ys.append(np.stack(y).astype(np.float32) if label_kind != "softmax" else y.astype(np.int64))
        ws.append(t.column("weight").to_numpy().astype(np.float32))
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0), np.zeros(0, np.float32)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def weights_digest(model) -> float:
    """A number that two workers with identical weights share (sum of |w| in float64)."""
    import numpy as np

    return float(sum(np.abs(np.asarray(w, dtype=np.float64)).sum() for w in model.get_weights()))


def shard_rows(folder: str, rank: int, n: int) -> int:
    """Rows in this rank's files, from the Parquet footers (no data read)."""
    import pyarrow.parquet as pq

    files = sorted(f for f in os.listdir(folder) if f.endswith(".parquet"))
    return sum(pq.ParquetFile(os.path.join(folder, f)).metadata.num_rows for i, f in enumerate(files) if i % n == rank)


def train_rank(spec: dict, rank: int, n: int, peers: list[str], steps: int) -> dict:
    """Train on this rank's shard (in a fresh process: TF configures collectives once per
    process); returns its metrics and weights digest."""

    if spec["backend"] != "tf":
        raise RuntimeError(f"training.backend={spec['backend']!r} is not available in this environment: the "
                           "horovod backend runs in its own pinned environment (TF 2.15.1 + horovod 0.28.1)")
    x, y, w = read_shard(spec["data"], rank, n, spec["kind"])
    if spec.get("fail_rank") == rank:
        raise RuntimeError(f"worker {rank} failed on purpose (test)")
    if n > 1:
        os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": peers}, "task": {"type": "worker", "index": rank}})
    import tensorflow as tf

    from vistarank.training.heads import build_head, loss_for

    strategy = tf.distribute.MultiWorkerMirroredStrategy() if n > 1 else tf.distribute.get_strategy()
    with strategy.scope():
        import keras

        keras.utils.set_random_seed(spec["seed"])
        model = build_head(x.shape[1], spec["n_out"], spec["kind"], tuple(spec["hidden"]), spec["dropout"],
                           spec["seed"])
        opt = keras.optimizers.Adam(spec["learning_rate"])
    loss_fn = loss_for(spec["kind"])
    global_batch = spec["batch_size"] * n

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

    ds = (tf.data.Dataset.from_tensor_slices((x, y, w))
          .shuffle(len(x), seed=spec["seed"] + rank, reshuffle_each_iteration=True)
          .batch(spec["batch_size"], drop_remainder=True).take(steps).prefetch(tf.data.AUTOTUNE))
    losses = []
    for _ in range(spec["epochs"]):
        total = 0.0
        for xb, yb, wb in ds:
            total += float(step(xb, yb, wb))
        losses.append(total / steps)
    out = {"rank": rank, "rows": len(x), "steps_per_epoch": steps, "losses": losses,
           "digest": weights_digest(model)}
    if rank == 0 and spec.get("artifact"):
        os.makedirs(os.path.dirname(spec["artifact"]), exist_ok=True)
        model.save(spec["artifact"])
        out["artifact"] = spec["artifact"]
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


def barrier_fn(spec_json: str):
    """The mapPartitions function of the barrier stage (captures only the JSON spec).

    The task agrees with its peers on steps per epoch and on host:port, then trains in a
    child Python process (a reused Spark worker may already hold a TensorFlow runtime,
    whose collectives can be configured only once per process)."""

    def run(_: Iterator) -> Iterator[str]:
        import subprocess
        import sys

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
            proc = subprocess.run([sys.executable, "-m", "vistarank.udfs.train_worker"], input=job, text=True,
                                  capture_output=True, timeout=spec["timeout_s"])
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
