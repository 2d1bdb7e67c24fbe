"""A prediction folder evaluated as the command lines do it: which match applies (checked before any work) and
the evaluation with the match saved beside the predictions, the table printed and the result saved."""
import os
import shutil
from typing import Any, Dict, List, Optional

from uss.data import layout
from uss.errors import InputError
from uss.evaluation.evaluator import evaluate_folder
from uss.evaluation.matching import describe_match, load_match
from uss.evaluation.results import format_table, write_result_json

AUTO = "auto"


def choose_match(requested: Optional[str], default: Optional[str], gt_dir: str, missing_hint: str = ""
                 ) -> Optional[str]:
    """The match a run applies: 'auto' (Hungarian on this split, which needs its GT), a readable match.json path,
    or None (no match). `requested` (--match) wins over `default`; bad choices are one-line InputErrors."""
    match = default if requested is None else requested
    if match is None or match == AUTO:
        if match == AUTO and not os.path.isdir(gt_dir):
            raise InputError(f"--match auto needs the ground truth ({gt_dir} not found); pass --match <validation "
                             f"match.json>")
        return match
    if not os.path.isfile(match):
        raise InputError(f"match file not found: {match}{missing_hint}")
    load_match(match)  # a bad file raises MatchFileError, an InputError
    return match


def evaluate_predictions(out_dir: str, data: str, split: str, match: str, result_path: Optional[str] = None,
                         progress: bool = True, names: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
    """Evaluate `out_dir` against the split's GT with match 'auto' (saved as <out>/match.json) or a match.json
    (copied to <out>/match.json). Without GT only the match is copied and None is returned.
    `names` restricts the evaluation to those images (default: every GT file)."""
    own_match = os.path.join(out_dir, "match.json")
    gt_dir = layout.segmentation_dir(data, split)
    match = choose_match(match, None, gt_dir)
    if match != AUTO:
        if os.path.abspath(match) != os.path.abspath(own_match):
            shutil.copyfile(match, own_match)
        match = own_match
    if not os.path.isdir(gt_dir):
        print(f"no GT for split '{split}' ({gt_dir}): {own_match} written, nothing evaluated")
        return None
    result = evaluate_folder(out_dir, gt_dir, categories=layout.load_categories(data), match=match,
                             progress=progress, save_match_to=own_match if match == AUTO else None, names=names)
    if result["match"] is not None:
        print(f"match: {describe_match(result['match'])}")
    print(format_table(result))
    if result_path:
        write_result_json(result_path, result)
        print(f"result: {result_path}")
    return result
