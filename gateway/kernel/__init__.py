"""The kernel: pure value objects and rules, no I/O. Every other layer builds on it."""
