"""Counter-based random numbers: a draw is a pure function of its key.

``uniform(seed, purpose, step, agent)`` hashes the four integers with the
splitmix64 finaliser and returns a float in [0, 1). Nothing is stateful, so:

* the two engines draw identical numbers whatever order they visit agents in,
  and however many processes or threads share the work;
* one seed gives the same population and the same chance events under every
  regime (common random numbers), so regime effects are paired differences.

Every draw in the model names its *purpose* (one of the constants below), so
adding a new kind of draw never shifts the numbers of an existing one.
"""

from __future__ import annotations

import math

import numpy as np

from .jit import entry

# --- purposes: one per kind of chance event (never reuse, never renumber) ---
# population (drawn once per seed, step = -1 or a sub-index)
POP_UNIVERSITY = 1
POP_ACHIEVEMENT = 2
POP_FIRM = 3
POP_BROKER = 4
POP_INSURER = 5
POP_ARRIVAL = 6
# monthly events
NEED = 20            # does a need arise in this firm this month
SELF_SEARCH = 21     # does the firm search the lists for this project's need (keyed by the project slot)
SELF_PICK = 22       # which listed achievements of its sector it judges (keyed by the slot)
SELF_NOISE = 23      # the firm's error in judging them (keyed by the slot)
VISIT = 24           # which firm a broker visits
SURFACE = 25         # does the visit surface a latent need
SCREEN = 26          # which achievements the broker screens
BROKER_NOISE = 27    # the broker's error in judging a candidate
NEGOTIATION = 28     # does a running negotiation conclude / break down
FIT = 29             # latent fit of a (firm, achievement) pair
OUTCOME = 30         # does the implementation of a pair succeed
ENTRY = 31           # does a candidate broker enter this month
ORDER = 32           # rotation of the canonical visiting order
VERIFY = 33          # is a false failure report of a trial found out
CLAIM = 34           # is an insured implementation's failure an insured event
# the instruments of issue 10 (allocated here so that no two modules pick the same number)
MATURATION_PICK = 35  # which shelved achievement a maturation grant goes to
EXPERT_VISIT = 36     # which firm an expert visits
EXPERT_SURFACE = 37   # does the expert's visit surface a latent need
EXPERT_SCREEN = 38    # which achievements the expert screens for the firm
EXPERT_NOISE = 39     # the expert's error in judging a candidate
EVENT_ATTEND = 40     # which firms attend a matching event
EVENT_SURFACE = 41    # does the event surface a latent need in an attending firm
EVENT_SCREEN = 42     # which achievements are pitched to the firm at the event
EVENT_NOISE = 43      # the firm's error in judging a pitch
LIST_FIND = 70        # does a firm's search of the published lists find an achievement meeting its need
OPEN_LIST = 71        # is an achievement on the open-licence list
INSTRUMENT_SPARE = (44, 45, 46, 47, 48, 49)  # for an instrument's further draws

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@entry
def _mix(z):
    """splitmix64 finaliser (a bijection of uint64 with good avalanche)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@entry
def stream(seed, purpose, step):
    """Hash of the key's first three parts: hot loops compute it once per month, not per agent."""
    h = _mix(np.uint64(seed) + _GOLDEN)
    h = _mix(h ^ (np.uint64(purpose) + _GOLDEN))
    return _mix(h ^ (np.uint64(step + 1) * _GOLDEN))   # step may be -1


@entry
def uniform_in(stream_hash, agent):
    """The uniform of ``agent`` in a stream: ``uniform_in(stream(s, p, t), a) == uniform(s, p, t, a)``."""
    return float(_mix(stream_hash ^ (np.uint64(agent) + _GOLDEN)) >> _S11) * _INV53


@entry
def uniform(seed, purpose, step, agent):
    """A uniform draw in [0, 1) keyed by (seed, purpose, step, agent)."""
    return uniform_in(stream(seed, purpose, step), agent)


@entry
def normal_in(stream_hash, agent):
    """The standard normal of ``agent`` in a stream (Box-Muller on its uniforms 2*agent, 2*agent+1)."""
    u1 = uniform_in(stream_hash, 2 * agent)
    u2 = uniform_in(stream_hash, 2 * agent + 1)
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


@entry
def normal(seed, purpose, step, agent):
    """A standard normal draw keyed by (seed, purpose, step, agent)."""
    return normal_in(stream(seed, purpose, step), agent)


@entry
def randint(seed, purpose, step, agent, n):
    """A uniform integer in [0, n) keyed like :func:`uniform` (n >= 1)."""
    k = int(uniform(seed, purpose, step, agent) * n)
    return k if k < n else n - 1


# --- draws for the population (any distribution, still a pure function of the key) ---
_TRIES = 64  # rejection attempts of the gamma sampler (acceptance > 95% per attempt)


@entry
def _gamma_in(normals, accepts, boosts, agent, shape):
    """Gamma(shape, 1) by Marsaglia & Tsang (2000), each attempt on its own keyed numbers of three streams."""
    boost = 1.0
    k = shape
    if k < 1.0:  # Gamma(k) = Gamma(k + 1) * U**(1/k)
        boost = (1.0 - uniform_in(boosts, agent)) ** (1.0 / k)
        k += 1.0
    d = k - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    v = 1.0
    for attempt in range(_TRIES):
        key = agent * _TRIES + attempt
        z = normal_in(normals, key)
        v = 1.0 + c * z
        if v <= 0.0:
            continue
        v = v * v * v
        u = uniform_in(accepts, key)
        if math.log(1.0 - u) < 0.5 * z * z + d - d * v + d * math.log(v):
            break
    return boost * d * v


@entry
def gamma(seed, purpose, step, agent, shape):
    """Gamma(shape, 1) draw; uses steps 3*step .. 3*step+2 of ``purpose`` and agents agent*_TRIES + attempt."""
    return _gamma_in(stream(seed, purpose, 3 * step), stream(seed, purpose, 3 * step + 1),
                     stream(seed, purpose, 3 * step + 2), agent, shape)


@entry
def beta(seed, purpose, step, agent, a, b):
    """Beta(a, b) draw as X / (X + Y) of two keyed gamma draws (steps 2*step and 2*step+1)."""
    x = gamma(seed, purpose, 2 * step, agent, a)
    y = gamma(seed, purpose, 2 * step + 1, agent, b)
    return x / (x + y)


@entry
def beta_array(seed, purpose, step, a, b):
    """Beta draws for agents 0..n-1 with per-agent parameters ``a[i]``, ``b[i]``."""
    sx, sy = 3 * (2 * step), 3 * (2 * step + 1)  # the streams of beta(): hoisted out of the loop
    x0, x1, x2 = stream(seed, purpose, sx), stream(seed, purpose, sx + 1), stream(seed, purpose, sx + 2)
    y0, y1, y2 = stream(seed, purpose, sy), stream(seed, purpose, sy + 1), stream(seed, purpose, sy + 2)
    out = np.empty(a.shape[0], dtype=np.float64)
    for i in range(a.shape[0]):
        x = _gamma_in(x0, x1, x2, i, a[i])
        out[i] = x / (x + _gamma_in(y0, y1, y2, i, b[i]))
    return out


@entry
def uniform_array(seed, purpose, step, n):
    """``n`` uniforms for agents 0..n-1 (vectorised :func:`uniform`)."""
    h = stream(seed, purpose, step)
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = uniform_in(h, i)
    return out


@entry
def normal_array(seed, purpose, step, n):
    """``n`` standard normals for agents 0..n-1 (vectorised :func:`normal`)."""
    h = stream(seed, purpose, step)
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = normal_in(h, i)
    return out
