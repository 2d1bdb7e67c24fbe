"""Region settings defined once (uss.regions.settings): the CLIs' defaults, the proposers' and the flags the shell
scripts take from `python -m uss.regions` are the same values, and the scripts write none of them themselves."""
import argparse
import os
import re
import subprocess
import sys

import pytest

from uss.regions import settings
from uss.regions.__main__ import main as print_flags
from uss.regions.superpixel import SuperpixelProposer
from uss import options
from tests.helpers import ROOT



def parse(argv):
    """The region-proposer options as sam_refine.py and test.py define them."""
    return argparse.ArgumentParser(parents=[options.regions()]).parse_args(argv)


def printed(*argv):
    """What the shell scripts read: `python -m uss.regions ARGS`, split into words."""
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}
    done = subprocess.run([sys.executable, "-m", "uss.regions", *argv], capture_output=True, text=True, env=env,
                          check=True)
    assert done.stderr == ""
    return done.stdout.split()


def test_sam_flags_are_the_challenge_settings_and_the_cli_defaults():
    assert settings.SAM_SETTINGS == dict(points_per_side=64, pred_iou_thresh=0.86, stability_score_thresh=0.92,
                                         crop_n_layers=1, crop_n_points_downscale_factor=2, min_mask_region_area=100)
    words = printed("sam")
    assert words == settings.sam_flags()
    flagged = vars(parse(["--proposer", "sam"] + words))
    default = vars(parse(["--proposer", "sam"]))
    assert flagged == default
    for key, value in {**settings.SAM_SETTINGS, "points_per_batch": 64}.items():
        assert flagged[key] == value


@pytest.mark.parametrize("preset, expected", [("demo", (100, 0.8, 20)), ("paper", (300, 0.8, 200))])
def test_superpixel_presets_parse_to_their_values(preset, expected):
    words = printed("superpixel", preset)
    args = parse(["--proposer", "superpixel"] + words)
    assert args.superpixel_method == "felzenszwalb"
    assert (args.superpixel_scale, args.superpixel_sigma, args.superpixel_min_size) == expected
    proposer = options.region_proposer(args)
    assert (proposer.scale, proposer.sigma, proposer.min_size) == expected


def test_cli_and_proposer_defaults_agree():
    args = parse(["--proposer", "superpixel"])
    cli = options.region_proposer(args)
    plain = SuperpixelProposer()
    for key in ("method", "scale", "sigma", "min_size", "n_segments", "compactness"):
        assert getattr(cli, key) == getattr(plain, key) == settings.SUPERPIXEL_SETTINGS[key]


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown preset"):
        settings.superpixel_flags("fast")
    with pytest.raises(SystemExit):
        print_flags(["superpixel", "fast"])


def test_region_options_take_the_settings_from_the_library():
    text = open(os.path.join(ROOT, "scripts", "common.sh")).read()
    assert '"$PY" -m uss.regions sam' in text and '"$PY" -m uss.regions superpixel "$preset"' in text
    assert 'local preset=${1:-$PRESET}' in text  # the script's preset unless a caller names another


@pytest.mark.parametrize("script", ["train_3.sh", "train_4.sh", "scripts/label_rows.sh"])
def test_scripts_take_the_region_settings_from_the_library(script):
    text = open(os.path.join(ROOT, script)).read()
    assert "\nregion_options\n" in text, f"{script} does not call common.sh's region_options"
    written = re.findall(r"--(?:points-per-side|pred-iou-thresh|stability-score-thresh|crop-n-layers|"
                         r"min-mask-region-area|superpixel-[a-z-]+)\b", text)
    assert not written, f"{script} writes region settings itself: {written}"
