"""ImageNet-S evaluation (official LUSSeg protocol) in pure numpy: matching, metrics, folder evaluator, report.

All scores are fractions in [0, 1]; tables show percent.
"""
from uss.evaluation.evaluator import EvaluationInputError, check_inputs, evaluate_folder
from uss.evaluation.matching import (MatchFileError, apply_match, cooccurrence, hungarian_match, load_match, save_match,
                                     unmapped_ids)
from uss.evaluation.metrics import (ImageStats, MetricAccumulator, boundary_map, confusion_matrix, evaluate_arrays,
                                    f_measure, image_accuracy, image_stats, iou_from_confusion, mask_to_boundary,
                                    mean_iou)
from uss.evaluation.results import format_table, write_result_json

__all__ = [
    "EvaluationInputError", "ImageStats", "MatchFileError", "MetricAccumulator", "apply_match", "boundary_map",
    "check_inputs", "confusion_matrix", "evaluate_arrays", "evaluate_folder", "f_measure", "format_table",
    "cooccurrence", "hungarian_match", "unmapped_ids", "image_accuracy", "image_stats", "iou_from_confusion",
    "load_match", "mask_to_boundary", "mean_iou", "save_match", "write_result_json",
]
