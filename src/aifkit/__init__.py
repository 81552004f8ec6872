"""aifkit: the training and onboarding kit of a European AI Factory."""

__version__ = "0.1.0"
