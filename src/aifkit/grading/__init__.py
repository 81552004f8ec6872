"""Grading on nbgrader: sandboxed, fail-closed, parallel autograde."""
