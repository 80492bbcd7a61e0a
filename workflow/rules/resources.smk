# Resource helpers for cluster execution (threads, memory, runtime, GPUs).
