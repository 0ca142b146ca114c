"""Training loops and the pieces they share (run directory, resumable state, EMA, NaN guard)."""
