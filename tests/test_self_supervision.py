"""Self-supervised pretraining learns: about a hundred PASS steps with the demo preset of train_1.sh on a small
fixed subset of the demo data (120 images) raise the k-means NMI of the backbone's pooled C5 features on those
images well above the random-init backbone's. It fails when the step stops learning (checked by hand with every
output of the PASS forward detached: benchmarks/demo_regime.md, "The self-supervision test").

Departures from the demo preset, for a short run: batch 16 and lr 9.6 (more and larger steps in the same time),
no warm-up, prototypes never frozen (the preset freezes them for 20 of its 310 steps)."""
import numpy as np
import pytest

from uss.data.toy import generate as make_toy
from uss.evaluation.feature_nmi import kmeans_nmi, load_backbone, load_split, pooled_features

from helpers import preset_arrays

CLASSES, PER_CLASS, EPOCHS, SEED = 10, 12, 14, 3  # 120 images, batch 16: 7 steps an epoch, 98 in all
SHORT_RUN = ["--epochs", str(EPOCHS), "--batch-size", "16", "--base-lr", "9.6", "--warmup-epochs", "0",
             "--freeze-prototypes-niters", "0", "--workers", "0", "--seed", str(SEED)]


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("selfsup") / "toy")
    make_toy(root, classes=CLASSES, size=64, train_per_class=PER_CLASS, val_per_class=1, test_per_class=1,
             progress=False)
    return root


def test_pretraining_raises_feature_nmi_above_random_init(subset, tmp_path):
    from uss.models.resnet import build_resnet
    from uss.stages import pretrain
    from uss.training.runner import seed_everything

    preset = preset_arrays("train_1.sh", "demo", "BACKBONE", "COMMON", "R18")
    dump = str(tmp_path / "pretrain")
    pretrain.main(["--data", subset, "--arch", "resnet18", "--dump-path", dump, *preset["BACKBONE"],
                   *preset["COMMON"], *preset["R18"], *SHORT_RUN])

    images, classes = load_split(subset)
    seed_everything(SEED)
    random_init = build_resnet(18, width=0.25, stem="small")
    before = np.mean([kmeans_nmi(pooled_features(random_init, images), classes, seed=s) for s in range(3)])
    trained = load_backbone(f"{dump}/checkpoint.safetensors")
    after = np.mean([kmeans_nmi(pooled_features(trained, images), classes, seed=s) for s in range(3)])
    # Measured: 0.231 at random init every time; after pretraining 0.312 on an idle machine and 0.278 in a fresh-clone
    # run beside a demo (the same seed: the trained value moves between runs, cause not traced; threaded float sums
    # are the suspect), 0.234 with the PASS step broken (every output detached). The margin sits between the two.
    assert after > before + 0.025, f"pooled-C5 k-means NMI {after:.3f} after pretraining, {before:.3f} at random init"
