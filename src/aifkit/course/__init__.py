"""The library course notebooks import: tiers, facts, site profiles, jobs, distributed helpers, data sets.

Everything here may run inside a learner's kernel. It imports nothing from aifkit's tooling
(notebooks, grading, hub, cli) so that ``validate --cached`` hashes only this package, the kernel
launcher and the data they read.
"""
