"""The conversation pipeline (no Qt): save, build turns, generate, checkpoint, finish."""
