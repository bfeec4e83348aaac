"""The one exception the exporter raises for a model it refuses to write."""

__all__ = ["OnnxExportError"]


class OnnxExportError(NotImplementedError):
    """The model (a layer, an option, a use of it) cannot be written as an ONNX graph
    that computes what predict() computes; the message names the layer and the reason.

    The exporter refuses rather than write an approximate graph.
    """
