"""Shared pieces of the training stages: checkpoints, schedules, distributed helpers, logging."""
