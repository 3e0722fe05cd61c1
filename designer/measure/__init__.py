"""Measurements on real hardware: proxy-training runs (`proxy`: proxy layouts and job files; `runs`: train
the jobs in-process or under torchrun and rank them) and GPU benchmarking. Measuring imports torch; the
analytic profiler (designer.profile) never does.
"""
