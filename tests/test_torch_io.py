"""PyTorch interchange: our LSTMs loaded from / exported to torch.nn.LSTM compute what torch computes.

Outputs are compared in float32 against torch's own nn.LSTM forward (batch_first),
max abs difference <= 1e-5: the only difference is the order of float32 additions
(torch adds two biases, we add one pre-summed bias).
"""

import numpy as np
import pytest

from fusedlstm.layers import GRU, LSTM, Bidirectional, Dense

TOL = 1e-5



def _torch_lstm(torch, seed, **kw):
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(batch_first=True, **kw)
    with torch.no_grad():
        for p in lstm.parameters():  # larger than torch's init so the gates leave their linear range
            p.uniform_(-0.8, 0.8)
    return lstm.eval()


def _run(layers, x):
    y = x
    for layer in layers:
        y = layer(y)
    return y


CASES = [
    pytest.param(dict(input_size=5, hidden_size=7), id="single"),
    pytest.param(dict(input_size=5, hidden_size=7, num_layers=3), id="stacked-3"),
    pytest.param(dict(input_size=4, hidden_size=6, bias=False), id="no-bias"),
    pytest.param(dict(input_size=5, hidden_size=7, bidirectional=True), id="bidirectional"),
    pytest.param(dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True), id="bidirectional-stacked"),
]


@pytest.mark.parametrize("kw", CASES)
def test_layers_from_torch_match_torch(torch, torch_io, rng, seed, kw):
    lstm = _torch_lstm(torch, seed, **kw)
    x = rng.normal(size=(3, 9, kw["input_size"])).astype(np.float32)
    with torch.no_grad():
        ref_seq, (h, c) = lstm(torch.from_numpy(x))
    layers = torch_io.lstm_layers_from_torch(lstm, return_sequences=True)
    got = _run(layers, x)
    assert got.shape == tuple(ref_seq.shape)
    err = np.abs(got - ref_seq.numpy()).max()
    assert err <= TOL, f"seed={seed}: max|ours - torch| = {err}"
    # The last layer's final state is torch's h_n/c_n of the last layer.
    last = torch_io.lstm_layers_from_torch(lstm, return_state=True)
    out = _run(last[:-1], x)
    y, *states = last[-1](out)
    ndir = 2 if kw.get("bidirectional") else 1
    torch_h = h.numpy()[-ndir:]
    torch_c = c.numpy()[-ndir:]
    for d in range(ndir):
        assert np.abs(states[2 * d] - torch_h[d]).max() <= TOL, f"seed={seed}: h of direction {d}"
        assert np.abs(states[2 * d + 1] - torch_c[d]).max() <= TOL, f"seed={seed}: c of direction {d}"


@pytest.mark.parametrize("kw", CASES)
def test_export_to_torch_matches_ours(torch, torch_io, rng, seed, kw):
    nl = kw.get("num_layers", 1)
    bidi = kw.get("bidirectional", False)
    layers = []
    for k in range(nl):
        cell = LSTM(kw["hidden_size"], return_sequences=True, use_bias=kw.get("bias", True))
        layers.append(Bidirectional(cell) if bidi else cell)
    x = rng.normal(size=(2, 6, kw["input_size"])).astype(np.float32)
    _run(layers, x)  # builds the layers
    for layer in layers:
        layer.set_weights([rng.uniform(-0.8, 0.8, size=w.shape).astype(np.float32) for w in layer.get_weights()])
    ours = _run(layers, x)
    module = torch_io.torch_lstm_from_layers(layers)
    assert (module.num_layers, module.bidirectional, module.bias) == (nl, bidi, kw.get("bias", True))
    with torch.no_grad():
        theirs = module(torch.from_numpy(x))[0].numpy()
    err = np.abs(ours - theirs).max()
    assert err <= TOL, f"seed={seed}: max|ours - torch| = {err}"
    # and back: the weights survive the round trip exactly
    again = torch_io.torch_lstm_weights(module)
    for layer, arrays in zip(layers, again):
        for a, b in zip(layer.get_weights(), arrays):
            np.testing.assert_array_equal(a, b)


def test_layout_is_transpose_and_bias_sum(torch, torch_io, seed):
    lstm = _torch_lstm(torch, seed, input_size=3, hidden_size=2)
    kernel, recurrent, bias = torch_io.torch_lstm_weights(lstm)[0]
    np.testing.assert_array_equal(kernel, lstm.weight_ih_l0.detach().numpy().T)
    np.testing.assert_array_equal(recurrent, lstm.weight_hh_l0.detach().numpy().T)
    np.testing.assert_array_equal(bias, (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy())
    assert kernel.shape == (3, 8) and recurrent.shape == (2, 8) and bias.shape == (8,)


def test_load_into_existing_model_layers(torch, torch_io, rng, seed):
    lstm = _torch_lstm(torch, seed, input_size=4, hidden_size=5, num_layers=2)
    layers = [LSTM(5, return_sequences=True), LSTM(5, return_sequences=True)]
    x = rng.normal(size=(2, 7, 4)).astype(np.float32)
    _run(layers, x)
    torch_io.load_torch_lstm(layers, lstm)
    with torch.no_grad():
        ref = lstm(torch.from_numpy(x))[0].numpy()
    assert np.abs(_run(layers, x) - ref).max() <= TOL, f"seed={seed}"


def test_refusals(torch, torch_io, rng):
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    proj = torch.nn.LSTM(4, 6, proj_size=2)
    with pytest.raises(ValueError, match="proj_size=2"):
        torch_io.torch_lstm_weights(proj)
    with pytest.raises(TypeError, match="expected a torch.nn.LSTM"):
        torch_io.torch_lstm_weights(torch.nn.GRU(4, 6))
    lstm = torch.nn.LSTM(4, 6, num_layers=2)
    one = [LSTM(6, return_sequences=True)]
    _run(one, x)
    with pytest.raises(ValueError, match="num_layers=2.*1 LSTM layers"):
        torch_io.load_torch_lstm(one, lstm)
    wrong = [LSTM(5, return_sequences=True), LSTM(6, return_sequences=True)]
    _run(wrong, x)
    with pytest.raises(ValueError, match=r"expected weight shapes \[\(4, 20\)"):
        torch_io.load_torch_lstm(wrong, lstm)
    hard = [LSTM(6, recurrent_activation="hard_sigmoid")]
    _run(hard, x)
    with pytest.raises(ValueError, match="recurrent_activation='hard_sigmoid'.*sigmoid"):
        torch_io.torch_lstm_from_layers(hard)
    last_only = [LSTM(6), LSTM(6)]
    with pytest.raises(ValueError, match="return_sequences=True"):
        torch_io.torch_lstm_from_layers(last_only)
    dense = Dense(3)
    dense(x)
    with pytest.raises(ValueError, match="not an LSTM"):
        torch_io.load_torch_lstm([dense], lstm)
    gru = GRU(6)
    gru(x)
    with pytest.raises(ValueError, match=r"layer 'gru\w*' \(GRU\) is not an LSTM"):
        torch_io.torch_lstm_from_layers(gru)
    bigru = Bidirectional(GRU(6))
    bigru(x)
    with pytest.raises(ValueError, match=r"\(Bidirectional\) has weights but is not an LSTM"):
        torch_io.load_torch_lstm([bigru], lstm)
    with pytest.raises(ValueError, match=r"layer 0 kernel: expected shape \(4, 24\), got \(5, 24\)"):
        torch_io.set_torch_lstm_weights(torch.nn.LSTM(4, 6), [[np.zeros((5, 24)), np.zeros((6, 24)), np.zeros(24)]])
