"""Checkpoint loading time, before and after the weights-only readers (seconds, best of --repeats).

    .venv/bin/python benchmarks/bench_checkpoint_load.py [--repeats 3] [--work DIR]

ViT-B SAM (random weights, the official layout, PyTorch zip as torch.save writes it): jt.load (the reader before)
vs uss.checkpoints.sam.read_state_dict. ResNet-50 pretraining checkpoint (model + SGD momentum, as train_1 saves):
the previous pickle format via pickle.loads vs this project's safetensors format via load_checkpoint.
"""
import argparse
import hashlib
import os
import pickle
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))
import uss  # noqa: E402,F401  (jittor environment first)
import jittor as jt  # noqa: E402
import numpy as np  # noqa: E402


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default=None, help="folder for the files (default: a temporary one)")
    args = parser.parse_args()
    import torch

    from uss.models import build_model
    from uss.sam import build_sam
    from uss.checkpoints.sam import load_sam_checkpoint, read_state_dict
    from uss.checkpoints.native import load_checkpoint, save_checkpoint

    with tempfile.TemporaryDirectory(dir=args.work) as work:
        sam_path = os.path.join(work, "sam_vit_b.pth")
        jt.set_global_seed(0)
        torch.save({k: torch.from_numpy(v.numpy()) for k, v in build_sam("vit_b").state_dict().items()}, sam_path)
        jt.gc()
        size = os.path.getsize(sam_path) / 2 ** 20
        sam = build_sam("vit_b")

        def previous_sam():  # the loader before: jt.load, then the same copy into the model
            params = sam.state_dict()
            for key, value in jt.load(sam_path).items():
                value = jt.array(value) if isinstance(value, np.ndarray) else value
                params[key].update(value.cast(params[key].dtype))
                params[key].sync(False, False)
            jt.sync_all()

        def current_sam():
            load_sam_checkpoint(sam, sam_path)
            jt.sync_all()

        old, new = best(previous_sam, args.repeats), best(current_sam, args.repeats)
        read = best(lambda: read_state_dict(sam_path), args.repeats)
        print(f"SAM ViT-B ({size:.0f} MiB, PyTorch zip) into the model: jt.load {old:.2f} s, weights-only reader "
              f"{new:.2f} s ({new / old:.2f}x; reading alone {read:.2f} s)")
        sam = None  # frees the model (the closures above hold the name, not the value)
        jt.gc()

        model = build_model("resnet50", "pretrain", n_prototypes=500, hidden_dim=2048)
        weights = {k: v.numpy() for k, v in model.state_dict().items()}
        state = {"epoch": 200, "state_dict": weights, "args": {"arch": "resnet50", "base_lr": 0.6},
                 "optimizer": {"defaults": {"lr": 0.6, "momentum": 0.9,
                                            "param_groups": [{"values": [v.copy() for v in weights.values()]}]}}}
        old_path, new_path = os.path.join(work, "checkpoint.pth.tar"), os.path.join(work, "checkpoint.safetensors")
        payload = pickle.dumps(state, protocol=4)
        with open(old_path, "wb") as handle:  # the previous format: pickle + SHA-1 + magic
            handle.write(payload + hashlib.sha1(payload).digest() + b"USS-CKPT-1")
        save_checkpoint(new_path, state)

        def previous():
            with open(old_path, "rb") as handle:
                data = handle.read()
            body = data[:-30]
            assert hashlib.sha1(body).digest() == data[-30:-10]
            return pickle.loads(body)

        size = os.path.getsize(new_path) / 2 ** 20
        old = best(previous, args.repeats)
        legacy = best(lambda: load_checkpoint(old_path), args.repeats)
        new = best(lambda: load_checkpoint(new_path), args.repeats)
        check = load_checkpoint(new_path)
        assert all(np.array_equal(check["state_dict"][k], v) for k, v in weights.items())
        print(f"ResNet-50 checkpoint ({size:.0f} MiB, model + momentum): previous pickle.loads {old:.2f} s, "
              f"safetensors load_checkpoint {new:.2f} s ({new / old:.2f}x); previous file through the "
              f"weights-only reader {legacy:.2f} s")


if __name__ == "__main__":
    main()
