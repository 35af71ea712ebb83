"""Wire format between the grading harness and a probe worker.

This module is copied into the sandbox next to the worker, so it imports nothing from `autograder` and
only numpy + safetensors from third parties (torch only when a torch tensor is actually sent).

A frame is::

    MAGIC (8 bytes) | header length (uint32, big endian) | payload length (uint64, big endian)
    | header: UTF-8 JSON object | payload: safetensors bytes (empty when no arrays are sent)

Values are plain JSON (None, bool, int, float, str, lists, dicts with string keys). Arrays are replaced in the
JSON by ``{"$array": "a0"}`` and travel in the safetensors payload; the header's ``"$arrays"`` table records
whether each one was a numpy array or a torch tensor (and the torch dtype when numpy has no equivalent), so
the receiver gets back the same kind and dtype. Nothing is ever unpickled: safetensors only holds raw
numbers, and every header is checked against this schema before use.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from safetensors.numpy import load as _safetensors_load
from safetensors.numpy import save as _safetensors_save

MAGIC = b"AGWIRE1\n"
_LENGTHS = struct.Struct(">IQ")
PREFIX_SIZE = len(MAGIC) + _LENGTHS.size
ARRAY_KEY = "$array"
ARRAYS_TABLE = "$arrays"
MAX_DEPTH = 32

# Torch dtypes that numpy cannot hold travel as float32 and are cast back on receipt.
_WIDENED_TORCH_DTYPES = {"bfloat16": "float32"}


class WireError(Exception):
    """A frame or value that does not follow the wire format (always the sender's fault)."""


class WireTimeout(WireError):
    """The peer did not send a complete frame before the deadline."""


class WireClosed(WireError):
    """The peer closed its end before sending a complete frame."""


@dataclass(frozen=True)
class WireLimits:
    max_header_bytes: int = 4 * 1024 * 1024
    max_payload_bytes: int = 256 * 1024 * 1024
    max_values: int = 200_000


# ---------------------------------------------------------------- encoding


def _torch_module():
    import sys

    return sys.modules.get("torch")


def _is_torch_tensor(value: Any) -> bool:
    torch = _torch_module()
    return torch is not None and isinstance(value, torch.Tensor)


def encode(message: dict) -> bytes:
    """Frame a message (a dict of plain values and arrays)."""
    if not isinstance(message, dict):
        raise WireError(f"a message must be a dict, got {type(message).__name__}")
    arrays: dict[str, np.ndarray] = {}
    table: dict[str, dict] = {}

    def convert(value: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)) and type(value) in (int, float):
            return value
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray) and type(value) is np.ndarray:
            return add_array(value, {"kind": "numpy"})
        if _is_torch_tensor(value):
            return add_torch(value)
        if type(value) in (list, tuple):
            return [convert(item, depth + 1) for item in value]
        if type(value) is dict:
            out = {}
            for key, item in value.items():
                if type(key) is not str or key.startswith("$"):
                    raise WireError(f"dict keys must be strings not starting with '$', got {key!r}")
                out[key] = convert(item, depth + 1)
            return out
        raise WireError(
            f"cannot send a value of type {type(value).__module__}.{type(value).__qualname__}; "
            "send numbers, strings, lists, dicts, numpy arrays or torch tensors"
        )

    def add_array(array: np.ndarray, info: dict) -> dict:
        if array.dtype.hasobject or array.dtype.kind not in "biufc" or array.dtype.kind == "c":
            raise WireError(f"cannot send an array of dtype {array.dtype}")
        name = f"a{len(arrays)}"
        # not np.ascontiguousarray: it turns 0-d arrays into 1-d ones
        arrays[name] = array if array.flags.c_contiguous else array.copy(order="C")
        table[name] = info
        return {ARRAY_KEY: name}

    def add_torch(tensor) -> dict:
        torch = _torch_module()
        # A subclass (or a tensor with a custom __eq__) arrives as a plain tensor: only its numbers travel.
        tensor = torch.Tensor.detach(tensor).to("cpu")
        tensor = torch.Tensor.as_subclass(tensor, torch.Tensor)
        dtype = str(tensor.dtype).removeprefix("torch.")
        info = {"kind": "torch", "dtype": dtype}
        if dtype in _WIDENED_TORCH_DTYPES:
            tensor = tensor.to(getattr(torch, _WIDENED_TORCH_DTYPES[dtype]))
        return add_array(tensor.contiguous().numpy(), info)

    header = convert(message, 0)
    header[ARRAYS_TABLE] = table
    header_bytes = json.dumps(header, allow_nan=True, separators=(",", ":")).encode("utf-8")
    payload = _safetensors_save(arrays) if arrays else b""
    return MAGIC + _LENGTHS.pack(len(header_bytes), len(payload)) + header_bytes + payload


# ---------------------------------------------------------------- decoding


def parse_prefix(prefix: bytes, limits: WireLimits) -> tuple[int, int]:
    if prefix[: len(MAGIC)] != MAGIC:
        raise WireError(f"bad frame start {prefix[:len(MAGIC)]!r} (expected {MAGIC!r}); the reply is not a wire frame")
    header_len, payload_len = _LENGTHS.unpack(prefix[len(MAGIC) :])
    if header_len > limits.max_header_bytes:
        raise WireError(f"frame header of {header_len} bytes exceeds the {limits.max_header_bytes}-byte limit")
    if payload_len > limits.max_payload_bytes:
        raise WireError(f"frame payload of {payload_len} bytes exceeds the {limits.max_payload_bytes}-byte limit")
    return header_len, payload_len


def decode(header_bytes: bytes, payload: bytes, limits: WireLimits = WireLimits()) -> dict:
    """Check and rebuild a message from its header and payload."""
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"frame header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise WireError("frame header must be a JSON object")
    table = header.pop(ARRAYS_TABLE, None)
    if not isinstance(table, dict):
        raise WireError(f"frame header lacks its {ARRAYS_TABLE!r} table")
    arrays: dict[str, np.ndarray] = {}
    if payload:
        try:
            arrays = _safetensors_load(payload)
        except Exception as exc:  # safetensors raises its own error types for malformed data
            raise WireError(f"frame payload is not valid safetensors: {exc}") from None
    if set(arrays) != set(table):
        raise WireError("frame payload arrays do not match the header's table")
    used: set[str] = set()
    count = 0

    def rebuild(value: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > limits.max_values:
            raise WireError(f"frame holds more than {limits.max_values} values")
        if depth > MAX_DEPTH:
            raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, list):
            return [rebuild(item, depth + 1) for item in value]
        if isinstance(value, dict):
            if ARRAY_KEY in value:
                return restore_array(value)
            for key in value:
                if key.startswith("$"):
                    raise WireError(f"unexpected key {key!r} in frame header")
            return {key: rebuild(item, depth + 1) for key, item in value.items()}
        raise WireError(f"unexpected JSON value of type {type(value).__name__}")

    def restore_array(ref: dict) -> Any:
        name = ref.get(ARRAY_KEY)
        if set(ref) != {ARRAY_KEY} or name not in table or name in used:
            raise WireError(f"bad array reference {ref!r}")
        used.add(name)
        info = table[name]
        if not isinstance(info, dict) or info.get("kind") not in ("numpy", "torch"):
            raise WireError(f"bad array description for {name!r}: {info!r}")
        array = arrays[name]
        if info["kind"] == "numpy":
            return array
        import torch  # only a receiver of torch tensors pays for importing torch

        dtype = info.get("dtype")
        tensor = torch.from_numpy(array.copy())
        if dtype in _WIDENED_TORCH_DTYPES:
            tensor = tensor.to(getattr(torch, dtype))
        elif dtype != str(tensor.dtype).removeprefix("torch."):
            raise WireError(f"array {name!r} claims torch dtype {dtype!r} but holds {array.dtype}")
        return tensor

    message = rebuild(header, 0)
    if used != set(table):
        raise WireError("frame payload carries arrays that the header does not use")
    return message


# ---------------------------------------------------------------- pipes


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG), so that a grading process
    killed from outside takes its harness and workers with it. Lives here because this is the one module that both
    ends of the pipes import."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)



def write_frame(fd: int, frame: bytes) -> None:
    view = memoryview(frame)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WireTimeout("no complete frame before the deadline")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise WireTimeout("no complete frame before the deadline")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise WireClosed(f"peer closed the pipe with {remaining} of {size} bytes still expected")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int, limits: WireLimits = WireLimits(), deadline: float | None = None) -> dict:
    """Read one frame from `fd` (blocking, or until the `time.monotonic()` deadline) and decode it."""
    header_len, payload_len = parse_prefix(_read_exact(fd, PREFIX_SIZE, deadline), limits)
    header = _read_exact(fd, header_len, deadline)
    payload = _read_exact(fd, payload_len, deadline)
    return decode(header, payload, limits)
