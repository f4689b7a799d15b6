"""The grounding feature: Locate, and an answer's boxes shown over its image."""
