"""Training: the loop, optimizer and schedules, distributed setup, checkpoints, logs, guards."""
