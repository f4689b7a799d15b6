"""Everything Qt: windows, views, item models and the inference worker thread."""
