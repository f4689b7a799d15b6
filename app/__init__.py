"""Scout Desk: question images, video and documents with Llama 4 Scout on your own machine."""

__version__ = "0.1.0"
