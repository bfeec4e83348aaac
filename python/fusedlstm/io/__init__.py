"""Weight and model interchange with Keras files (Keras 3 and Keras 2) and PyTorch.

    load_keras_file(path, model=None, compile=True)   .keras / .weights.h5 / .h5 / .hdf5
    save_keras_file(model, path, weights_only=False)
    from_keras(keras_model), to_keras(model)          in-memory conversion
    fusedlstm.io.torch_io                              torch.nn.LSTM / GRU / RNN weights (its parts:
                                                       torch_layout, torch_layers, torch_state_dict)

h5py is needed for every Keras file (pip install 'fusedlstm[h5]'); keras and torch
only for from_keras/to_keras and torch_io.

Importing this package registers the Keras suffixes with fusedlstm.saving, so
model.save('m.keras') and load_model('m.h5') reach the functions here
(`import fusedlstm` does it).
"""

from ..saving import register_exporter
from .convert import KerasCompatibilityWarning, from_keras, load_keras_file, save_keras_file, to_keras
from .keras_legacy_h5 import LegacyActivationWarning
from .layer_rules import UnsupportedModelError


def _export_onnx(model, filepath, opset=None, opset_version=None, **kwargs):
    try:
        # imported when asked for: fusedlstm.io.onnx needs the onnx package, an optional extra
        from .onnx import DEFAULT_OPSET, export_onnx
    except ModuleNotFoundError as e:
        if e.name != "onnx":
            raise
        raise ImportError("model.export(format='onnx') needs the onnx package: "
                          "pip install 'fusedlstm[onnx]'.") from None
    if opset is not None and opset_version is not None and opset != opset_version:
        raise ValueError(f"model.export: opset={opset} and opset_version={opset_version} disagree; pass one.")
    chosen = opset if opset is not None else opset_version
    return export_onnx(model, filepath, opset=DEFAULT_OPSET if chosen is None else chosen, **kwargs)


register_exporter("onnx", _export_onnx)

__all__ = ["load_keras_file", "save_keras_file", "from_keras", "to_keras", "UnsupportedModelError",
           "KerasCompatibilityWarning", "LegacyActivationWarning"]
