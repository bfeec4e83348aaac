"""Weight and model interchange with Keras files (Keras 3 and Keras 2) and PyTorch.

    load_keras_file(path, model=None, compile=True)   .keras / .weights.h5 / .h5 / .hdf5
    save_keras_file(model, path, weights_only=False)
    from_keras(keras_model), to_keras(model)          in-memory conversion
    fusedlstm.io.torch_io                              torch.nn.LSTM weights

h5py is needed for every Keras file (pip install 'fusedlstm[h5]'); keras and torch
only for from_keras/to_keras and torch_io.

Importing this package registers the Keras suffixes with fusedlstm.saving, so
model.save('m.keras') and load_model('m.h5') reach the functions here
(`import fusedlstm` does it).
"""

from .convert import KerasCompatibilityWarning, from_keras, load_keras_file, save_keras_file, to_keras
from .keras_legacy_h5 import LegacyActivationWarning
from .layer_rules import UnsupportedModelError

__all__ = ["load_keras_file", "save_keras_file", "from_keras", "to_keras", "UnsupportedModelError",
           "KerasCompatibilityWarning", "LegacyActivationWarning"]
