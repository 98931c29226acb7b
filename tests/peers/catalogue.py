"""What every peer server offers: one sensor and request catalogue for all implementations.

This module is plain data with no imports beyond the stdlib, because it is loaded both by the
test process and by ``kp_server.py`` inside the katcp-python venv. The katcp-python peer and
the aiokatcp peer build the same sensors and requests from it, so a test can run one scenario
against either.

Requests (the same names on every peer server)
----------------------------------------------
``?echo [arg ...]``
    ``!echo ok arg ...``: the arguments come back unchanged (escapes included). Caution:
    katcp-python 0.9.3's server formats every request with ``str(msg)``, which raises on
    non-UTF-8 bytes and kills its request-handler thread, so the server never answers again.
``?fail-with [message]``
    ``!fail-with fail message`` (default message :data:`DEFAULT_FAIL_MESSAGE`), produced by
    raising ``FailReply``.
``?slow-echo delay [arg ...]``
    Asynchronous: ``#slow-echo started`` at once, then ``!slow-echo ok arg ...`` after ``delay``
    seconds; the server keeps answering other requests meanwhile.
``?hinted``
    ``!hinted ok``. katcp-python announces a request timeout hint of :data:`HINTED_TIMEOUT`
    seconds for it when running as KATCP 5.1 (``protocol="5.1"``); aiokatcp has no hints.
``?inform-burst count``
    ``count`` informs ``#inform-burst <i>`` (i = 0 .. count-1), then ``!inform-burst ok count``.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_FAIL_MESSAGE",
    "DEFAULT_FLOAT_SENSORS",
    "DISCRETE_VALUES",
    "FIXED_SENSORS",
    "HINTED_TIMEOUT",
    "REQUEST_NAMES",
    "SensorSpec",
    "float_sensor_name",
    "sensor_specs",
]

#: Message used by ``?fail-with`` when it gets no argument.
DEFAULT_FAIL_MESSAGE = "expected failure"
#: Request timeout hint (seconds) that katcp-python announces for ``?hinted`` at KATCP 5.1.
HINTED_TIMEOUT = 12.5
#: How many float sensors a peer server has unless told otherwise.
DEFAULT_FLOAT_SENSORS = 4
#: Values of ``discrete-sensor``.
DISCRETE_VALUES = ("one", "two", "three")
#: The custom requests of every peer server (standard requests come on top).
REQUEST_NAMES = ("echo", "fail-with", "slow-echo", "hinted", "inform-burst")

# (name, KATCP type, description, units, params, initial value). Params follow katcp-python's
# Sensor(..., params) convention: [min, max] for numbers, the value list for discrete.
SensorSpec = tuple[str, str, str, str, list, object]

#: Sensors present on every peer server besides the float sensors.
FIXED_SENSORS: tuple[SensorSpec, ...] = (
    ("int-sensor", "integer", "An integer sensor", "counts", [-1000, 1000], 7),
    ("discrete-sensor", "discrete", "A discrete sensor", "", list(DISCRETE_VALUES), "two"),
    ("bool-sensor", "boolean", "A boolean sensor", "", [], True),
    # The space and backslash make the value need escaping on the wire.
    ("string-sensor", "string", "A string sensor", "", [], "hello world\\"),
    ("timestamp-sensor", "timestamp", "A timestamp sensor", "", [], 1234567890.5),
)


def float_sensor_name(index: int) -> str:
    """Return the name of float sensor number ``index`` (``float.0``, ``float.1``, ...).

    Parameters
    ----------
    index : int
        Zero-based sensor number.

    Returns
    -------
    str
        The sensor name.
    """
    return f"float.{index}"


def sensor_specs(n_float: int = DEFAULT_FLOAT_SENSORS) -> list[SensorSpec]:
    """Return the sensors of a peer server with ``n_float`` float sensors.

    Float sensor ``i`` is named :func:`float_sensor_name` ``(i)``, has range [-1e6, 1e6],
    units ``V`` and initial value ``i + 0.25``.

    Parameters
    ----------
    n_float : int
        Number of float sensors.

    Returns
    -------
    list of SensorSpec
        The fixed sensors followed by the float sensors.
    """
    floats: list[SensorSpec] = [
        (float_sensor_name(i), "float", f"Float sensor {i}", "V", [-1e6, 1e6], i + 0.25)
        for i in range(n_float)
    ]
    return [*FIXED_SENSORS, *floats]
