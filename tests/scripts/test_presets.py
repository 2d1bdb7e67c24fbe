"""Paper presets: each stage's values, read from the scripts' paper (`else`) blocks by bash and parsed by the stage's
own argparse, are one published recipe (PASS's PyTorch one: LARC 0.001 at a global batch of 256; PASS's ResNet-50
recipe for ResNet-50; mmsegmentation's UPerNet schedule), and each block cites the file its values come from."""

import pytest

from tests.helpers import preset_arrays, preset_block



REQUIRED = ["--data", "d", "--dump-path", "o"]


def parse(parser, argv):
    """Parse with the stage's own parser; unknown or malformed flags fail the test."""
    return parser.parse_args(argv)


def pass_pytorch_optimisation(args, batch=256):
    """PASS main branch: SGD momentum 0.9 wrapped in LARC (trust 0.001, clip off), global batch 8 x 32, cosine."""
    assert (args.larc, args.batch_size, args.momentum, args.schedule) == (0.001, batch, 0.9, "cosine")
    assert (args.warmup_epochs, args.wd) == (0, 1e-6)


def test_pretraining_is_pass_pytorch_r18_s50_and_pass_r50():
    from uss.stages.pretrain import build_parser

    block = preset_block("train_1.sh", "paper")
    for source in ("main:scripts/luss50_pass.sh", "main:scripts/luss300_pass.sh", "main:main_pretrain.py"):
        assert source in block
    arrays = preset_arrays("train_1.sh", "paper", "COMMON", "R18", "R50")
    r18 = parse(build_parser(), REQUIRED + arrays["COMMON"] + arrays["R18"])
    r50 = parse(build_parser(), REQUIRED + arrays["COMMON"] + arrays["R50"])
    for args in (r18, r50):
        pass_pytorch_optimisation(args)
        assert (args.base_lr, args.final_lr, args.temperature, args.epsilon, args.sinkhorn_iterations) == \
            (0.6, 0.0006, 0.1, 0.05, 3)
        assert (args.feat_dim, args.epoch_queue_starts, args.seed, args.shallow, args.weights) == \
            (128, 15, 10010, [3], [1.0, 1.0])
    # luss50_pass.sh (ResNet-18, ImageNet-S50)
    assert (r18.nmb_crops, r18.size_crops, r18.min_scale_crops, r18.max_scale_crops) == \
        ([2, 6], [224, 96], [0.14, 0.05], [1.0, 0.14])
    assert (r18.hidden_mlp, r18.nmb_prototypes, r18.queue_length, r18.freeze_prototypes_niters, r18.epochs) == \
        (512, 500, 2048, 1001, 200)
    # luss300_pass.sh / luss919_pass.sh (ResNet-50)
    assert (r50.nmb_crops, r50.size_crops, r50.min_scale_crops, r50.max_scale_crops) == ([2], [224], [0.08], [1.0])
    assert (r50.hidden_mlp, r50.nmb_prototypes, r50.queue_length, r50.freeze_prototypes_niters, r50.epochs) == \
        (2048, 3000, 3840, 5005, 100)


def test_pixel_attention_clustering_and_sweep_are_pass_pytorch():
    from uss.stages.cluster import build_parser as cluster_parser
    from uss.stages.pixel_attention import build_parser
    from uss.stages.pixel_labels import build_parser as labels_parser

    block = preset_block("train_2.sh", "paper")
    for source in ("main:scripts/luss50_pass.sh", "main:scripts/luss300_pass.sh", "main:main_pixel_attention.py",
                   "main:cluster.py", "main:inference_pixel_attention.py"):
        assert source in block
    arrays = preset_arrays("train_2.sh", "paper", "ATTENTION", "R18", "R50", "CLUSTER", "SWEEP")
    extra = REQUIRED + ["--pretrained", "p"]
    r18 = parse(build_parser(), extra + arrays["ATTENTION"] + arrays["R18"])
    r50 = parse(build_parser(), extra + arrays["ATTENTION"] + arrays["R50"])
    for args in (r18, r50):
        pass_pytorch_optimisation(args)
        assert (args.nmb_crops, args.size_crops, args.min_scale_crops, args.max_scale_crops) == \
            ([2], [224], [0.08], [1.0])
        assert (args.queue_length, args.epoch_queue_starts, args.freeze_prototypes_niters, args.epochs) == \
            (3840, 0, 0, 20)
        assert (args.final_lr, args.temperature, args.seed) == (0.0006, 0.1, 10010)
    assert (r18.base_lr, r18.hidden_mlp, r18.nmb_prototypes) == (6.0, 512, 500)
    assert (r50.base_lr, r50.hidden_mlp, r50.nmb_prototypes) == (0.6, 2048, 3000)
    cluster = parse(cluster_parser(), extra + arrays["CLUSTER"])
    assert (cluster.resize, cluster.crop, cluster.batch_size, cluster.restarts, cluster.iterations) == \
        (256, 224, 256, 30, 20)
    sweep = parse(labels_parser(),
                  ["sweep", "--data", "d", "--pretrained", "p", "--cluster-dir", "c"] + arrays["SWEEP"])
    from uss.labeling.threshold import parse_range

    assert sweep.short_side == 256 and parse_range(sweep.thresholds) == [i / 100 for i in range(0, 81)]


def test_linear_head_is_pass_pytorch():
    from uss.stages.finetune import build_parser

    block = preset_block("scripts/linear_head_row.sh", "paper")
    assert "main:scripts/luss50_pass.sh" in block and "main:main_pixel_finetuning.py" in block
    arrays = preset_arrays("scripts/linear_head_row.sh", "paper", "LABELS", "FINETUNE", "INFER")
    args = parse(build_parser(), REQUIRED + ["--pseudo-labels", "l", "--pretrained", "p"] + arrays["FINETUNE"])
    pass_pytorch_optimisation(args)
    assert (args.arch, args.head, args.epochs, args.base_lr, args.final_lr) == ("resnet18", "linear", 20, 0.6, 0.0006)
    assert (args.crop_size, args.min_scale, args.label_scale) == (224, 0.08, 0.5)
    assert arrays["LABELS"] == ["--short-side", "256"]
    assert arrays["INFER"] == ["--short-side", "256", "--max-pixels", "1000000"]  # main:inference.py: 1000 x 1000


def test_upernet_is_mmsegmentations_80k_schedule_adapted():
    from uss.stages.finetune import build_parser

    block = preset_block("train_4.sh", "paper")
    assert "configs/upernet/upernet_r50_512x512_80k_ade20k.py" in block
    assert "configs/_base_/schedules/schedule_80k.py" in block
    arrays = preset_arrays("train_4.sh", "paper", "FINETUNE", "TEST")
    args = parse(build_parser(), REQUIRED + ["--pseudo-labels", "l", "--pretrained", "p"] + arrays["FINETUNE"])
    assert (args.arch, args.head) == ("resnet50", "upernet")
    # configs/_base_/models/upernet_r50.py: UPerHead channels 512, pool_scales (1, 2, 3, 6), dropout_ratio 0.1
    assert "configs/_base_/models/upernet_r50.py" in block
    assert (args.head_channels, args.pool_scales, args.head_dropout, args.classifier_init) == \
        (512, [1, 2, 3, 6], 0.1, "normal")
    # schedule_80k.py: SGD lr 0.01, momentum 0.9, weight decay 5e-4, PolyLR power 0.9, eta_min 1e-4, per iteration
    assert (args.larc, args.base_lr, args.momentum, args.wd) == (0.0, 0.01, 0.9, 5e-4)
    assert (args.schedule, args.poly_power, args.final_lr, args.warmup_epochs) == ("poly", 0.9, 1e-4, 0)
    # global batch 16 (4 GPUs x 4); 20 epochs of ImageNet-S50's 64,431 images at 16 = about 80k iterations
    assert args.batch_size == 16
    assert abs(args.epochs * (64431 // args.batch_size) - 80000) < 1000


@pytest.mark.parametrize("script", ["train_1.sh", "train_2.sh", "train_3.sh", "train_4.sh",
                                    "scripts/linear_head_row.sh"])
def test_every_paper_block_keeps_the_global_batch_convention(script):
    # --batch-size is the global batch everywhere (scripts/common.sh, README): no per-rank arithmetic in the presets.
    block = preset_block(script, "paper")
    assert "NGPU" not in block and "$((" not in block
