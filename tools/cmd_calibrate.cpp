// kvcali calibrate: filled in by its issue.
