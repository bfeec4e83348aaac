"""The functional graph compiled into a flat execution plan.

`build_plan(inputs, outputs)` walks the symbolic graph once and turns it into a
`Plan`: a topologically ordered list of steps, each reading and writing numbered
slots (one slot per tensor). Running a model is a loop over those steps calling each
layer's `_fwd` on whole arrays; training runs `_bwd` in reverse, summing gradients of
slots with several consumers. Producer -> LSTM pairs that fuse (Embedding,
RepeatVector; see fusion.py) become a single step.

Which steps need a backward pass, and which of their inputs need a gradient, is
computed once per trainable-set (store generation), not per step.
"""

from ..layers.core import InputLayer
from ..variables import generation
from . import fusion

__all__ = ["nodes_in_call_order", "Step", "Caches", "Plan", "build_plan", "flatten"]


def nodes_in_call_order(tensors):
    """The call nodes that produce `tensors`, each once, every node after its inputs' nodes."""
    order, seen = [], set()

    def visit(t):
        node = t._keras_history[1]
        if id(node) in seen:
            return
        seen.add(id(node))
        for t_in in node.inputs:
            visit(t_in)
        order.append(node)

    for t in tensors:
        visit(t)
    return order

class Step:
    __slots__ = ("op", "ins", "outs", "training", "layers", "need", "active", "n_state", "act")

    def __init__(self, op, ins, outs, training, layers, n_state=0):
        self.op = op
        self.ins = ins
        self.outs = outs
        self.training = training
        self.layers = layers
        self.n_state = n_state
        self.need = [False] * len(ins)
        self.active = True
        # The activity regularizer on this step's outputs (fixed when the model is built).
        self.act = getattr(op, "activity_regularizer", None)


class Caches(list):
    """One forward pass's per-step caches, and `extra`: {step index: the gradients of the
    activity penalties w.r.t. that step's outputs}, added to them in the backward pass."""

    __slots__ = ("extra",)

    def __init__(self, n):
        super().__init__([None] * n)
        self.extra = None


class Plan:
    """Steps over slots; input_slots/output_slots map model inputs/outputs to slots."""

    def __init__(self, steps, n_slots, input_slots, output_slots, producers):
        self.steps = steps
        self.n_slots = n_slots
        self.input_slots = input_slots
        self.output_slots = output_slots
        self.producers = producers  # slot -> index of the step writing it (or -1 for inputs)
        self._need_key = None

    def prepare_grads(self, input_need):
        """Mark which steps run backward and which inputs they must differentiate."""
        key = (generation(), tuple(input_need))
        if key == self._need_key:
            return
        rg = [False] * self.n_slots
        for s, n in zip(self.input_slots, input_need):
            rg[s] = rg[s] or bool(n)
        for st in self.steps:
            st.need = [rg[i] for i in st.ins]
            has_w = any(layer.trainable_weights for layer in st.layers)
            st.active = has_w or any(st.need)
            out_rg = st.active
            for o in st.outs:
                rg[o] = out_rg
        self._need_key = key


def flatten(x):
    if isinstance(x, (list, tuple)):
        out = []
        for e in x:
            out.extend(flatten(e))
        return out
    return [x]


def build_plan(input_tensors, output_tensors, model_name):
    """Topologically order the graph between the given tensors and assign slots."""
    order = []
    state = {}

    def visit(t):
        hist = t._keras_history
        if hist is None:
            raise ValueError(f"Model '{model_name}': tensor {t} was not produced by a layer or Input.")
        layer, node, _ = hist
        key = id(node)
        st = state.get(key)
        if st == 2:
            return
        if st == 1:
            raise ValueError(f"Model '{model_name}': the layer graph has a cycle at layer '{layer.name}'.")
        state[key] = 1
        for t_in in node.inputs:
            visit(t_in)
        state[key] = 2
        order.append(node)

    for t in output_tensors:
        visit(t)

    slots = {}
    input_ids = {id(t) for t in input_tensors}
    for t in input_tensors:
        if id(t) not in slots:
            slots[id(t)] = len(slots)
    steps = []
    for node in order:
        if isinstance(node.layer, InputLayer):
            t = node.outputs[0]
            if id(t) not in input_ids:
                raise ValueError(
                    f"Graph disconnected in model '{model_name}': cannot obtain value for tensor "
                    f"{t} at layer '{node.layer.name}'. Pass it among the model's `inputs`.")
            continue
        for t in node.outputs:
            slots.setdefault(id(t), len(slots))
        steps.append(Step(node.layer, [slots[id(t)] for t in node.inputs],
                          [slots[id(t)] for t in node.outputs], node.training, [node.layer],
                          node.n_state))
    for t in output_tensors:
        if id(t) not in slots:
            raise ValueError(f"Model '{model_name}': output {t} is not reachable from the inputs.")
    output_slots = [slots[id(t)] for t in output_tensors]
    input_slots = [slots[id(t)] for t in input_tensors]
    steps = _fuse_steps(steps, set(output_slots))
    producers = {s: -1 for s in input_slots}
    for k, st in enumerate(steps):
        for o in st.outs:
            producers[o] = k
    return Plan(steps, len(slots), input_slots, output_slots, producers)


def _fuse_steps(steps, output_slots):
    consumers = {}
    for k, st in enumerate(steps):
        for i in st.ins:
            consumers.setdefault(i, []).append(k)
    out, skip = [], set()
    for k, st in enumerate(steps):
        if k in skip:
            continue
        fused = None
        if len(st.outs) == 1 and st.training is None and st.outs[0] not in output_slots:
            users = consumers.get(st.outs[0], [])
            if len(users) == 1:
                nxt = steps[users[0]]
                if nxt.ins[0] == st.outs[0] and st.outs[0] not in nxt.ins[1:] and nxt.training is None:
                    op = fusion.fuse(st.op, nxt.op)
                    if op is not None:
                        fused = Step(op, st.ins + nxt.ins[1:], nxt.outs, None, op.layers, nxt.n_state)
                        skip.add(users[0])
        out.append(fused or st)
    # The fused step sits at the producer's place, possibly before the producers of the
    # consumer's other inputs (initial states): re-sort topologically. No cycle can
    # appear: only the consumer read the producer's output.
    return _toposort(out)


def _toposort(steps):
    produced = {}
    for k, st in enumerate(steps):
        for o in st.outs:
            produced[o] = k
    done, order = set(), []

    def visit(k):
        if k in done:
            return
        done.add(k)
        for i in steps[k].ins:
            p = produced.get(i)
            if p is not None:
                visit(p)
        order.append(steps[k])

    for k in range(len(steps)):
        visit(k)
    return order
