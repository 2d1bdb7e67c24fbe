"""The PASS pretraining step learns: on one fixed multi-crop batch of demo images, forty steps of the real step
(`SwAVTask.step`, train_1.sh's demo preset) bring each of PASS's three losses well below its value at random init
(SwAV and deep-to-shallow from ln K, the number of prototypes; pixel-to-pixel from about 0 towards -1), and the same
steps with the objective cut off from the parameters leave every loss where it was.

Why a fixed batch and not the k-means NMI of pooled features after about a hundred steps (what this test checked
before): at that budget the NMI is run-to-run noise. The same short run gave 0.218 / 0.277 / 0.227 / 0.179 for seeds
1-4 after 49 steps, 0.292 / 0.288 / 0.248 after 98 and 0.180 for seed 3 after 196, against 0.231 at random init, and
one seed gives other values on other CPUs (0.312 and 0.278 were measured for seed 3 elsewhere); the SwAV loss itself
stays at ln K through such a run. Overfitting a handful of examples is the check that tells a working step from a
broken one on every machine. What pretraining adds at the demo's full budget: the random-init reference row of
demo.sh and benchmarks/demo_data.py."""
import math

import pytest

from tests.helpers import preset_arrays
from uss.data.toy import generate as make_toy

pytestmark = pytest.mark.slow  # trains

STEPS, SEED = 40, 3
PROTOTYPES = 50  # the demo preset's --nmb-prototypes: SwAV and deep-to-shallow start at ln 50


def fixed_batch_losses(root: str, dump: str, detach: bool):
    """The loss parts of the first and the last of STEPS steps on one fixed batch of 16 images."""
    import jittor as jt  # noqa: F401  (after uss: the environment is set)

    from uss import options
    from uss.data.split import ImageNetSSplit
    from uss.stages import pretrain
    from uss.training import runner
    from uss.training.optim import build_optimizer, set_lr
    from uss.training.swav_task import pass_objective

    preset = preset_arrays("train_1.sh", "demo", "BACKBONE", "COMMON", "R18")
    args = pretrain.build_parser().parse_args(
        ["--data", root, "--arch", "resnet18", "--dump-path", dump, *preset["BACKBONE"], *preset["COMMON"],
         *preset["R18"], "--batch-size", "16", "--workers", "0", "--freeze-prototypes-niters", "0",
         "--seed", str(SEED)])
    assert args.nmb_prototypes == PROTOTYPES
    runner.seed_everything(SEED)
    model = pretrain.build(args)

    def objective(loss, model, *batch):
        total, parts = pass_objective(loss, model, *batch)
        if detach:  # the broken step: the same losses, no gradient reaches the parameters
            total = total.detach() + 0 * sum(p.sum() for p in model.parameters() if not p.is_stop_grad())
        return total, parts

    task = pretrain.swav_task(args, model, objective)
    task.initialise()
    task.start(runner.StageLog(task.name, dump), 0)
    optimizer = build_optimizer(task.parameters, options.optimiser_settings(args))
    set_lr(optimizer, args.base_lr)  # the preset's peak rate, held constant
    loader = task.dataset(ImageNetSSplit(root, "train"))
    loader.set_epoch(0)
    batch = next(iter(loader))[:-1]  # crops and overlap grids, without the bad-file list
    model.train()
    parts = [task.step(batch, step, optimizer) for step in range(STEPS)]
    return parts[0], parts[-1]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("selfsup") / "toy")
    make_toy(root, classes=4, size=64, train_per_class=4, val_per_class=1, test_per_class=1, progress=False)
    return root


def test_the_pretraining_step_fits_a_fixed_batch(images, tmp_path):
    first, last = fixed_batch_losses(images, str(tmp_path / "step"), detach=False)
    assert first["swav"] == pytest.approx(math.log(PROTOTYPES), abs=0.02)  # random init: uniform codes
    # Measured (seed 3, this data, colour jitter 0.5): SwAV 3.909 -> 3.001, deep-to-shallow 3.912 -> 3.095,
    # pixel-to-pixel 0.008 -> -0.637.
    assert last["swav"] < first["swav"] - 0.3, (first, last)
    assert last["d2s"] < first["d2s"] - 0.3, (first, last)
    assert last["p2p"] < first["p2p"] - 0.3, (first, last)


def test_a_broken_step_fits_nothing(images, tmp_path):
    first, last = fixed_batch_losses(images, str(tmp_path / "broken"), detach=True)
    for part in ("swav", "d2s", "p2p"):
        assert abs(last[part] - first[part]) < 0.01, (part, first, last)
