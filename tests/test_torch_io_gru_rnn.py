"""PyTorch interchange of GRU and SimpleRNN: our layers loaded from / exported to torch.nn.GRU and
torch.nn.RNN compute what torch computes.

Outputs and final states are compared in float32 against torch's own forward (batch_first),
max abs difference <= 1e-5. torch.nn.GRU is Keras's GRU(reset_after=True) with the gate blocks
r, z, n swapped to z, r, h and its two biases as the bias rows; torch.nn.RNN is SimpleRNN with
its two biases summed. The state_dict cases go through files written by torch.save.
"""

import numpy as np
import pytest

from fusedlstm.layers import GRU, LSTM, Bidirectional, Dense, Input, SimpleRNN
from fusedlstm.models import Sequential

TOL = 1e-5

# (torch module, nonlinearity or None) -> our layer and the torch_io function names.
KINDS = {
    "gru": ("GRU", None),
    "rnn-tanh": ("RNN", "tanh"),
    "rnn-relu": ("RNN", "relu"),
}

CASES = [
    pytest.param(dict(input_size=5, hidden_size=7), id="single"),
    pytest.param(dict(input_size=5, hidden_size=7, num_layers=3), id="stacked-3"),
    pytest.param(dict(input_size=4, hidden_size=6, bias=False), id="no-bias"),
    pytest.param(dict(input_size=5, hidden_size=7, bidirectional=True), id="bidirectional"),
    pytest.param(dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True), id="bidirectional-stacked"),
]



def _module(torch, kind, seed, **kw):
    name, nonlinearity = KINDS[kind]
    torch.manual_seed(seed)
    extra = {"nonlinearity": nonlinearity} if nonlinearity else {}
    module = getattr(torch.nn, name)(batch_first=True, **extra, **kw)
    with torch.no_grad():
        # larger than torch's init so gates leave their linear range; relu RNNs stay bounded over 9 steps
        scale = 0.5 if nonlinearity == "relu" else 0.8
        for p in module.parameters():
            p.uniform_(-scale, scale)
    return module.eval()


def _api(torch_io, kind):
    if kind == "gru":
        return dict(weights=torch_io.torch_gru_weights, set=torch_io.set_torch_gru_weights,
                    layers=torch_io.gru_layers_from_torch, load=torch_io.load_torch_gru,
                    export=torch_io.torch_gru_from_layers)
    return dict(weights=torch_io.torch_rnn_weights, set=torch_io.set_torch_rnn_weights,
                layers=torch_io.simple_rnn_layers_from_torch, load=torch_io.load_torch_rnn,
                export=torch_io.torch_rnn_from_layers)


def _our_layer(kind, units, **kw):
    if kind == "gru":
        return GRU(units, **kw)
    return SimpleRNN(units, activation=KINDS[kind][1], **kw)


def _run(layers, x):
    y = x
    for layer in layers:
        y = layer(y)
    return y


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("kw", CASES)
def test_layers_from_torch_match_torch(torch, torch_io, rng, seed, kind, kw):
    module = _module(torch, kind, seed, **kw)
    x = rng.normal(size=(3, 9, kw["input_size"])).astype(np.float32)
    with torch.no_grad():
        ref_seq, h_n = module(torch.from_numpy(x))
    api = _api(torch_io, kind)
    layers = api["layers"](module, return_sequences=True)
    got = _run(layers, x)
    assert got.shape == tuple(ref_seq.shape)
    err = np.abs(got - ref_seq.numpy()).max()
    assert err <= TOL, f"seed={seed}: max|ours - torch| = {err}"
    # The last layer's final state is torch's h_n of the last layer (forward, then backward).
    last = api["layers"](module, return_state=True)
    _, *states = last[-1](_run(last[:-1], x))
    ndir = 2 if kw.get("bidirectional") else 1
    assert len(states) == ndir
    for d in range(ndir):
        err = np.abs(states[d] - h_n.numpy()[-ndir + d]).max()
        assert err <= TOL, f"seed={seed}: h of direction {d}: {err}"


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("kw", CASES)
def test_export_to_torch_matches_ours(torch, torch_io, rng, seed, kind, kw):
    nl, bidi, bias = kw.get("num_layers", 1), kw.get("bidirectional", False), kw.get("bias", True)
    layers = []
    for _ in range(nl):
        cell = _our_layer(kind, kw["hidden_size"], return_sequences=True, use_bias=bias)
        layers.append(Bidirectional(cell) if bidi else cell)
    x = rng.normal(size=(2, 6, kw["input_size"])).astype(np.float32)
    _run(layers, x)  # builds the layers
    scale = 0.5 if kind == "rnn-relu" else 0.8
    for layer in layers:
        layer.set_weights([rng.uniform(-scale, scale, size=w.shape).astype(np.float32) for w in layer.get_weights()])
    ours = _run(layers, x)
    api = _api(torch_io, kind)
    module = api["export"](layers)
    name, nonlinearity = KINDS[kind]
    assert type(module).__name__ == name
    assert (module.num_layers, module.bidirectional, module.bias) == (nl, bidi, bias)
    if nonlinearity:
        assert module.nonlinearity == nonlinearity
    with torch.no_grad():
        theirs = module(torch.from_numpy(x))[0].numpy()
    err = np.abs(ours - theirs).max()
    assert err <= TOL, f"seed={seed}: max|ours - torch| = {err}"
    # and back: the weights survive the round trip exactly (GRU: both bias rows kept; RNN: b + 0)
    again = api["weights"](module)
    for layer, arrays in zip(layers, again):
        for a, b in zip(layer.get_weights(), arrays):
            np.testing.assert_array_equal(a, b)


def test_gru_layout_swaps_r_and_z_and_keeps_both_biases(torch, torch_io, seed):
    gru = _module(torch, "gru", seed, input_size=3, hidden_size=2)
    kernel, recurrent, bias = torch_io.torch_gru_weights(gru)[0]
    H = 2
    w_ih, w_hh = gru.weight_ih_l0.detach().numpy(), gru.weight_hh_l0.detach().numpy()
    b_ih, b_hh = gru.bias_ih_l0.detach().numpy(), gru.bias_hh_l0.detach().numpy()
    assert kernel.shape == (3, 6) and recurrent.shape == (2, 6) and bias.shape == (2, 6)
    # torch rows: r = [0, H), z = [H, 2H), n = [2H, 3H); Keras columns: z, r, h
    for keras_block, torch_block in ((0, 1), (1, 0), (2, 2)):
        kc, tr = slice(keras_block * H, (keras_block + 1) * H), slice(torch_block * H, (torch_block + 1) * H)
        np.testing.assert_array_equal(kernel[:, kc], w_ih[tr].T)
        np.testing.assert_array_equal(recurrent[:, kc], w_hh[tr].T)
        np.testing.assert_array_equal(bias[0, kc], b_ih[tr])
        np.testing.assert_array_equal(bias[1, kc], b_hh[tr])


def test_rnn_layout_is_transpose_and_bias_sum(torch, torch_io, seed):
    rnn = _module(torch, "rnn-tanh", seed, input_size=3, hidden_size=2)
    kernel, recurrent, bias = torch_io.torch_rnn_weights(rnn)[0]
    np.testing.assert_array_equal(kernel, rnn.weight_ih_l0.detach().numpy().T)
    np.testing.assert_array_equal(recurrent, rnn.weight_hh_l0.detach().numpy().T)
    np.testing.assert_array_equal(bias, (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy())
    module = torch_io.torch_rnn_from_layers(_built(SimpleRNN(2), 3, [kernel, recurrent, bias]))
    np.testing.assert_array_equal(module.bias_ih_l0.detach().numpy(), bias)
    np.testing.assert_array_equal(module.bias_hh_l0.detach().numpy(), np.zeros_like(bias))


def _built(layer, features, weights=None):
    Sequential([Input((4, features)), layer])
    if weights is not None:
        layer.set_weights(weights)
    return layer


@pytest.mark.parametrize("kind", list(KINDS))
def test_load_into_a_model(torch, torch_io, rng, seed, kind):
    module = _module(torch, kind, seed, input_size=4, hidden_size=5, num_layers=2)
    model = Sequential([Input((7, 4)), _our_layer(kind, 5, return_sequences=True),
                        _our_layer(kind, 5, return_sequences=True)])
    _api(torch_io, kind)["load"](model, module)
    x = rng.normal(size=(2, 7, 4)).astype(np.float32)
    with torch.no_grad():
        ref = module(torch.from_numpy(x))[0].numpy()
    assert np.abs(model.predict(x, verbose=0) - ref).max() <= TOL, f"seed={seed}"


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["plain", "bidirectional"])
def test_state_dict_file_round_trip(torch, torch_io, tmp_path, rng, seed, kind, bidirectional):
    module = _module(torch, kind, seed, input_size=3, hidden_size=4, num_layers=2, bidirectional=bidirectional)
    path = tmp_path / f"{kind}.pt"
    torch.save(module.state_dict(), path)

    def model():
        cells = [_our_layer(kind, 4, return_sequences=True) for _ in range(2)]
        return Sequential([Input((5, 3))] + [Bidirectional(c) if bidirectional else c for c in cells])

    from_file, from_module = model(), model()
    torch_io.load_torch_state_dict(from_file, path)
    _api(torch_io, kind)["load"](from_module, module)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(from_file.predict(x, verbose=0), from_module.predict(x, verbose=0))
    with torch.no_grad():
        ref = module(torch.from_numpy(x))[0].numpy()
    assert np.abs(from_file.predict(x, verbose=0) - ref).max() <= TOL, f"seed={seed}"
    # Inside a larger module: prefix= picks the entries.
    outer = {f"encoder.rnn.{k}": v for k, v in module.state_dict().items()}
    outer["head.weight"] = torch.zeros(2, 8)
    nested = model()
    torch_io.load_torch_state_dict(nested, outer, prefix="encoder.rnn.")
    np.testing.assert_array_equal(nested.predict(x, verbose=0), from_module.predict(x, verbose=0))


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------

def test_reset_after_false_gru_is_refused(torch, torch_io, rng):
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    old = GRU(6, reset_after=False)
    old(x)
    with pytest.raises(ValueError, match=r"layer 'gru\w*' has reset_after=False.*torch.nn.GRU cannot compute"):
        torch_io.torch_gru_from_layers(old)
    with pytest.raises(ValueError, match=r"reset_after=False.*cannot compute"):
        torch_io.load_torch_gru(old, torch.nn.GRU(4, 6))
    bi = Bidirectional(GRU(6, reset_after=False, return_sequences=True))
    bi(x)
    with pytest.raises(ValueError, match=r"has reset_after=False"):
        torch_io.torch_gru_from_layers(bi)
    with pytest.raises(ValueError, match=r"layer 0 bias: expected shape \(2, 18\), got \(18,\) "
                                         r"\(a reset_after=False GRU's bias"):
        torch_io.set_torch_gru_weights(torch.nn.GRU(4, 6), [old.get_weights()])
    state = torch.nn.GRU(4, 6).state_dict()
    with pytest.raises(ValueError, match="reset_after=False"):
        torch_io.load_torch_state_dict(old, state)


def test_modules_and_layers_of_the_wrong_kind(torch, torch_io, rng):
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    with pytest.raises(TypeError, match=r"argument `gru`, expected a torch.nn.GRU, got LSTM "
                                        r"\(torch_lstm_weights and its siblings take a torch.nn.LSTM\)"):
        torch_io.torch_gru_weights(torch.nn.LSTM(4, 6))
    with pytest.raises(TypeError, match=r"argument `rnn`, expected a torch.nn.RNN, got GRU"):
        torch_io.load_torch_rnn(SimpleRNN(6), torch.nn.GRU(4, 6))
    with pytest.raises(TypeError, match=r"argument `lstm`, expected a torch.nn.LSTM, got RNN"):
        torch_io.torch_lstm_weights(torch.nn.RNN(4, 6))
    lstm = LSTM(6)
    lstm(x)
    with pytest.raises(ValueError, match=r"\(LSTM\) is not a GRU or Bidirectional\(GRU\)"):
        torch_io.torch_gru_from_layers(lstm)
    with pytest.raises(ValueError, match=r"\(LSTM\) is not a SimpleRNN or Bidirectional\(SimpleRNN\)"):
        torch_io.load_torch_rnn(lstm, torch.nn.RNN(4, 6))
    dense = Dense(3)
    dense(x)
    with pytest.raises(ValueError, match=r"\(Dense\) has weights but is not a GRU"):
        torch_io.load_torch_gru([GRU(6), dense], torch.nn.GRU(4, 6))
    with pytest.raises(ValueError, match=r"\(Dense\) is not an LSTM, GRU or SimpleRNN"):
        torch_io.load_torch_state_dict(dense, torch.nn.GRU(4, 6).state_dict())
    # A GRU's state_dict read for LSTM layers (and the other way): the gate count tells them apart.
    lstm_layer = _built(LSTM(6), 4)
    with pytest.raises(ValueError, match=r"weight_hh_l0 has shape \(18, 6\), expected \(4H, H\) for torch.nn.LSTM "
                                         r"\(the layout of a torch.nn.GRU: load it into GRU layers\)"):
        torch_io.load_torch_state_dict(lstm_layer, torch.nn.GRU(4, 6).state_dict())
    with pytest.raises(ValueError, match=r"weight_hh_l0 has shape \(6, 6\), expected \(3H, H\) for torch.nn.GRU "
                                         r"\(the layout of a torch.nn.RNN"):
        torch_io.load_torch_state_dict(_built(GRU(6), 4), torch.nn.RNN(4, 6).state_dict())


def test_activations_torch_cannot_compute_are_refused(torch, torch_io, rng):
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    hard = GRU(6, recurrent_activation="hard_sigmoid")
    hard(x)
    with pytest.raises(ValueError, match=r"recurrent_activation='hard_sigmoid', but torch.nn.GRU uses 'sigmoid'"):
        torch_io.torch_gru_from_layers(hard)
    relu = _built(SimpleRNN(6, activation="relu"), 4)
    with pytest.raises(ValueError, match=r"activation='relu', but torch.nn.RNN uses 'tanh'"):
        torch_io.load_torch_rnn(relu, torch.nn.RNN(4, 6))  # torch's default nonlinearity is tanh
    sigmoid = _built(SimpleRNN(6, activation="sigmoid"), 4)
    with pytest.raises(ValueError, match=r"activation='sigmoid', but torch.nn.RNN uses 'tanh' or 'relu'"):
        torch_io.torch_rnn_from_layers(sigmoid)
    with pytest.raises(ValueError, match=r"activation='sigmoid', but torch.nn.RNN uses 'tanh' or 'relu'"):
        torch_io.load_torch_state_dict(sigmoid, torch.nn.RNN(4, 6).state_dict())
    mixed = [SimpleRNN(6, activation="tanh", return_sequences=True), SimpleRNN(6, activation="relu")]
    _run(mixed, x)
    with pytest.raises(ValueError, match=r"one nonlinearity for every layer; the layers use \['relu', 'tanh'\]"):
        torch_io.torch_rnn_from_layers(mixed)
    back = _built(GRU(6, go_backwards=True), 4)
    with pytest.raises(ValueError, match=r"go_backwards=True, which torch.nn.GRU cannot express"):
        torch_io.torch_gru_from_layers(back)
    training = torch.nn.GRU(4, 6, num_layers=2, dropout=0.3)  # a new module is in training mode
    with pytest.raises(ValueError, match=r"applies dropout between layers in training mode; call gru.eval\(\)"):
        torch_io.gru_layers_from_torch(training)


@pytest.mark.parametrize("kind", ["gru", "rnn-tanh"])
def test_bad_state_dicts_name_the_tensor(torch, torch_io, tmp_path, kind):
    module = _module(torch, kind, 0, input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    target = lambda: [Bidirectional(_our_layer(kind, 4, return_sequences=True)) for _ in range(2)]  # noqa: E731
    layers = target()
    Sequential([Input((5, 3))] + layers)
    G = 3 if kind == "gru" else 1
    name = KINDS[kind][0]

    def refused(state, match):
        path = tmp_path / "bad.pt"
        torch.save(state, path)
        before = [w.copy() for layer in layers for w in layer.get_weights()]
        with pytest.raises(ValueError, match=match):
            torch_io.load_torch_state_dict(layers, path)
        after = [w for layer in layers for w in layer.get_weights()]
        assert all(np.array_equal(a, b) for a, b in zip(before, after)), "a refused file changed the weights"

    state = module.state_dict()
    del state["bias_hh_l1_reverse"]
    refused(state, "lacks bias_hh_l1_reverse")
    state = module.state_dict()
    state["weight_ih_l1"] = torch.zeros(G * 4, 5)
    refused(state, rf"weight_ih_l1 has shape \({G * 4}, 5\), expected \({G * 4}, 8\)")
    state = module.state_dict()
    state["weight_hh_l0_reverse"] = torch.zeros(G * 4, 3)
    refused(state, rf"weight_hh_l0_reverse has shape \({G * 4}, 3\), expected \({G * 4}, 4\)")
    state = module.state_dict()
    state["bias_ih_l1"] = torch.zeros(G * 4 + 1)
    refused(state, rf"bias_ih_l1 has shape \({G * 4 + 1},\), expected \({G * 4},\)")
    state = module.state_dict()
    state["weight_hr_l0"] = torch.zeros(4, 4)
    refused(state, rf"'weight_hr_l0' is not a torch.nn.{name} weight")
    state = {k: v for k, v in module.state_dict().items() if "_l1" not in k}
    refused(state, r"has num_layers=1, the target has 2 (GRU|SimpleRNN) layers")
    # set_*_weights: the module's shapes, named per layer and direction
    bad = [list(a) for a in _api(torch_io, kind)["weights"](module)]
    bad[1][3] = np.zeros((5, G * 4), np.float32)  # backward kernel of layer 1: input is 8 wide
    with pytest.raises(ValueError, match=rf"layer 1_reverse kernel: expected shape \(8, {G * 4}\), got \(5, {G * 4}\)"):
        _api(torch_io, kind)["set"](module, bad)


@pytest.mark.parametrize("kind", ["gru", "rnn-relu"])
def test_damaged_state_dict_files_are_refused_or_load(torch, torch_io, tmp_path, kind):
    """Truncated and bit-flipped files: a ValueError naming the file, or weights that fit; nothing else."""
    module = _module(torch, kind, 0, input_size=3, hidden_size=4, bidirectional=True)
    good = tmp_path / "good.pt"
    torch.save(module.state_dict(), good)
    blob = good.read_bytes()
    rng = np.random.default_rng(24)
    damaged = [blob[:1], blob[: len(blob) // 2], blob[:-1], blob[len(blob) // 2:]]
    for _ in range(24):
        flipped = bytearray(blob)
        flipped[int(rng.integers(0, len(blob)))] ^= 1 << int(rng.integers(0, 8))
        damaged.append(bytes(flipped))
    layer = _built(Bidirectional(_our_layer(kind, 4)), 3)
    path = tmp_path / "f.pt"
    refused = 0
    for data in damaged:
        path.write_bytes(data)
        try:
            torch_io.load_torch_state_dict(layer, path)
        except ValueError as exc:
            assert str(path) in str(exc)
            refused += 1
    assert refused >= 4  # every truncation at least
