"""The training stages' shared library: the training loop and its tasks, checkpoints, schedules, optimiser, logging."""
