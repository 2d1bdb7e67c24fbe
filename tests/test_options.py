"""The command-line options (uss.options): one meaning per flag across every entry point, test.py's --mode and
the decoders' --workers kept as old spellings, sweep/generate as subcommands, and key command lines of the scripts
parsed to the values they had before the options were shared."""
import argparse

import pytest

from uss.evaluation.cli import build_parser as evaluate_parser
from uss.stages import (cluster, finetune, inference, mask_labels, pixel_attention, pixel_labels, pretrain,
                        refined_inference)

PARSERS = {"pretrain": pretrain.build_parser, "pixel_attention": pixel_attention.build_parser,
           "finetune": finetune.build_parser, "cluster": cluster.build_parser,
           "pseudo_labels": pixel_labels.build_parser, "sam_refine": mask_labels.build_parser,
           "inference": inference.build_parser, "test.py": refined_inference.build_parser, "evaluate": evaluate_parser}
LABELS = ["--data", "d", "--pretrained", "p", "--cluster-dir", "c"]


def visible_actions(parser: argparse.ArgumentParser):
    """Every documented option of a parser and of its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from visible_actions(sub)
        elif action.option_strings and action.help is not argparse.SUPPRESS:
            yield action


def test_each_flag_has_one_meaning_everywhere():
    meanings = {}
    for name, build in PARSERS.items():
        for action in visible_actions(build()):
            dest = action.dest
            for flag in action.option_strings:
                meanings.setdefault(flag, {}).setdefault((dest, action.type, action.nargs), []).append(name)
    clashes = {flag: seen for flag, seen in meanings.items() if len(seen) > 1}
    assert not clashes, clashes
    workers = [a.help for build in PARSERS.values() for a in visible_actions(build())
               if "--workers" in a.option_strings]
    threads = [a.help for build in PARSERS.values() for a in visible_actions(build())
               if "--threads" in a.option_strings]
    assert len(workers) == 4 and all("processes" in h for h in workers)  # pretrain, attention, finetune, cluster
    assert len(threads) == 3 and all("threads" in h for h in threads)  # inference, test.py, evaluate


def test_test_py_split_mode_alias_and_defaults():
    parser = refined_inference.build_parser()
    default = parser.parse_args([])
    assert (default.split, default.data, default.proposer, default.sam_checkpoint, default.threads) == \
        ("validation", refined_inference.DEFAULT_DATA, "sam", refined_inference.DEFAULT_SAM, 2)
    assert parser.parse_args(["--split", "testA"]).split == parser.parse_args(["--mode", "testA"]).split == "testA"
    assert parser.parse_args(["--threads", "3"]).threads == parser.parse_args(["--workers", "3"]).threads == 3
    assert parser.parse_args(["--proposer", "superpixel"]).proposer == "superpixel"
    assert "--mode" in parser.format_help() and "--workers" not in parser.format_help()


def test_decoding_threads_keep_their_old_spelling():
    args = ["--checkpoint", "c", "--data", "d", "--out", "o"]
    assert inference.build_parser().parse_args(args).threads == 2
    assert inference.build_parser().parse_args(args + ["--workers", "5"]).threads == 5
    assert inference.build_parser().parse_args(args + ["--threads", "4"]).threads == 4
    assert evaluate_parser().parse_args(["--pred", "p"]).threads is None  # evaluator's own default (up to 8)
    assert evaluate_parser().parse_args(["--pred", "p", "--workers", "6"]).threads == 6


def test_subcommands_keep_the_command_lines_and_refuse_a_missing_word_or_out(capsys):
    parser = pixel_labels.build_parser()
    sweep = parser.parse_args(["sweep", *LABELS, "--short-side", "64", "--thresholds", "auto"])
    assert (sweep.command, sweep.split, sweep.short_side, sweep.thresholds, sweep.out) == \
        ("sweep", None, 64, "auto", None)
    generate = parser.parse_args(["generate", *LABELS, "--split", "test", "--foreground", "oracle", "--out", "o"])
    assert (generate.command, generate.split, generate.foreground, generate.out, generate.threshold) == \
        ("generate", "test", "oracle", "o", None)
    for argv, message in (([*LABELS], "sweep,label-free,generate"), (["generate", *LABELS], "required: --out"),
                          (["label", *LABELS, "--out", "o"], "invalid choice: 'label'")):
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "--help"])
    assert "--foreground" in capsys.readouterr().out


def test_mask_labels_take_one_argument_list_for_both_subcommands():
    # train_3.sh passes the same COMMON list (with --thresholds) to sweep and to generate.
    common = [*LABELS, "--sweep-dir", "s", "--proposer", "superpixel", "--superpixel-min-size", "20",
              "--short-side", "64", "--thresholds", "auto"]
    parser = mask_labels.build_parser()
    sweep = parser.parse_args(["sweep", *common])
    generate = parser.parse_args(["generate", *common, "--out", "labels"])
    assert (sweep.command, generate.command, generate.out, generate.superpixel_min_size) == \
        ("sweep", "generate", "labels", 20)
    assert sweep.out is None  # bodies may read args.out in either subcommand, as before
    assert {k: v for k, v in vars(sweep).items() if k not in ("command", "out")} == \
        {k: v for k, v in vars(generate).items() if k not in ("command", "out")}
    assert (sweep.points_per_side, sweep.pred_iou_thresh, sweep.sam_checkpoint) == (64, 0.86, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["sweep", *LABELS, "--sweep-dir", "s"])  # the proposer is required here


def test_pixel_attention_defaults_do_not_leak_into_pretraining():
    required = ["--data", "d", "--dump-path", "o"]
    attention = pixel_attention.build_parser().parse_args(required + ["--pretrained", "p"])
    plain = pretrain.build_parser().parse_args(required)
    assert (attention.epochs, attention.base_lr, attention.shallow, attention.queue_length) == (20, 6.0, [], 0)
    assert (plain.epochs, plain.base_lr, plain.shallow, plain.queue_length, plain.arch) == (200, 0.6, [3], 3840,
                                                                                          "resnet50")
    assert vars(attention).keys() - vars(plain).keys() == {"pretrained"}


def test_demo_command_lines_parse_to_their_values():
    """train_1.sh / train_4.sh demo lines, with the values they parsed to before the shared options."""
    pre = pretrain.build_parser().parse_args([
        "--data", "data/toy", "--arch", "resnet18", "--dump-path", "runs/demo/r18/pretrain", "--width", "0.25",
        "--stem", "small", "--nmb-crops", "2", "4", "--size-crops", "64", "32", "--batch-size", "32", "--larc",
        "0.001", "--workers", "2", "--seed", "31", "--epochs", "10", "--hidden-mlp", "128"])
    assert (pre.split, pre.width, pre.stem, pre.nmb_crops, pre.size_crops, pre.workers, pre.skip_bad_files) == \
        ("train", 0.25, "small", [2, 4], [64, 32], 2, False)
    assert (pre.epochs, pre.batch_size, pre.larc, pre.seed, pre.hidden_mlp, pre.max_iters_per_epoch) == \
        (10, 32, 0.001, 31, 128, 0)
    tune = finetune.build_parser().parse_args([
        "--data", "data/toy", "--pseudo-labels", "l", "--pretrained", "p", "--dump-path", "o", "--arch", "resnet18",
        "--head", "upernet", "--head-channels", "32", "--epochs", "4", "--crop-size", "64", "--workers", "2"])
    assert (tune.arch, tune.head, tune.head_channels, tune.epochs, tune.crop_size, tune.workers, tune.seed) == \
        ("resnet18", "upernet", 32, 4, 64, 2, 31)
    assert (tune.num_classes, tune.label_scale, tune.classifier_init, tune.width) == (None, 0.5, "normal", 1.0)
    test = refined_inference.build_parser().parse_args([
        "--split", "test", "--data", "data/toy", "--checkpoint", "c", "--out", "runs/demo/test_py", "--proposer",
        "superpixel", "--superpixel-scale", "100", "--superpixel-min-size", "20", "--short-side", "64", "--zip", "z"])
    assert (test.split, test.short_side, test.max_pixels, test.shard, test.zip, test.superpixel_min_size) == \
        ("test", 64, 1000 * 1000, None, "z", 20)
    kmeans = cluster.build_parser().parse_args(["--data", "d", "--pretrained", "p", "--dump-path", "o"])
    assert (kmeans.batch_size, kmeans.workers, kmeans.seed, kmeans.num_classes, kmeans.split) == (64, 2, 31, 0, "train")
