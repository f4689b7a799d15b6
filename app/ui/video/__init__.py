"""The video feature: the panel, the timeline, per-frame asks, saved runs and exports."""
