"""Model engines (no Qt): the interface, a scripted engine, and the local Llama 4 engine."""
