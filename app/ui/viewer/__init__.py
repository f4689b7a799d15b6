"""An image with its boxes: the canvas, the box list, the viewer dock's widget and its exports."""
