"""Work off the GUI thread: the task pool and the inference worker that owns the engine."""
