"""Tests of the apps of experiments/ not tied to one analysis: the main job, the dashboard, discovery, the mutation list."""
