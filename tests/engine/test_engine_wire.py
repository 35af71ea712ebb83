"""The wire format: what crosses the sandbox boundary, and what is refused."""

import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from autograder.engine import wire


def roundtrip(message, limits=wire.WireLimits()):
    frame = wire.encode(message)
    prefix = frame[: wire.PREFIX_SIZE]
    header_len, payload_len = wire.parse_prefix(prefix, limits)
    header = frame[wire.PREFIX_SIZE : wire.PREFIX_SIZE + header_len]
    payload = frame[wire.PREFIX_SIZE + header_len :]
    assert len(payload) == payload_len
    return wire.decode(header, payload, limits)


def test_plain_values_roundtrip():
    message = {"none": None, "flag": True, "n": -3, "x": 2.5, "nan": float("nan"), "s": "héllo",
               "nested": {"list": [1, [2, {"k": "v"}]], "tuple": (1, 2)}}
    back = roundtrip(message)
    assert back["nested"] == {"list": [1, [2, {"k": "v"}]], "tuple": [1, 2]}
    assert back["s"] == "héllo" and back["none"] is None and back["flag"] is True
    assert np.isnan(back["nan"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.bool_])
def test_numpy_arrays_keep_kind_dtype_and_shape(dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 3).astype(dtype)
    back = roundtrip({"a": array, "view": array[:, ::2], "zero_d": array[0, 0, 0], "empty": array[:0]})
    assert type(back["a"]) is np.ndarray and back["a"].dtype == dtype and back["a"].shape == (2, 3, 4)
    np.testing.assert_array_equal(back["a"], array)
    np.testing.assert_array_equal(back["view"], array[:, ::2])
    assert back["empty"].shape == (0, 3, 4) and back["empty"].dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
                                   torch.uint8, torch.bool])
def test_torch_tensors_keep_kind_dtype_and_shape(dtype):
    tensor = (torch.arange(12).reshape(3, 4) % 2).to(dtype)
    back = roundtrip({"t": tensor, "grad": torch.ones(2, requires_grad=True) * 3, "scalar": torch.tensor(1.5)})
    assert type(back["t"]) is torch.Tensor and back["t"].dtype == dtype and back["t"].shape == (3, 4)
    assert torch.equal(back["t"], tensor)
    assert not back["grad"].requires_grad and back["grad"].tolist() == [3.0, 3.0]
    assert back["scalar"].shape == () and back["scalar"].item() == 1.5


def test_numpy_scalars_arrive_as_python_numbers():
    back = roundtrip({"i": np.int64(3), "f": np.float32(0.5)})
    assert back == {"i": 3, "f": 0.5} and type(back["i"]) is int


def test_tensor_subclass_arrives_as_plain_tensor():
    class Sneaky(torch.Tensor):
        def __eq__(self, other):
            return True

    back = roundtrip({"t": torch.zeros(2).as_subclass(Sneaky)})
    assert type(back["t"]) is torch.Tensor and back["t"].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("value", [object(), {1: "int key"}, {"$array": "a0"}, np.array(["a"], dtype=object),
                                   np.ma.masked_array([1, 2]), 1j, True.__class__.__mro__, type("I", (int,), {})(3)],
                         ids=["object", "int-key", "dollar-key", "object-array", "ndarray-subclass", "complex",
                              "tuple-of-types", "int-subclass"])
def test_unsendable_values_are_refused(value):
    with pytest.raises(wire.WireError):
        wire.encode({"v": value})


def _frame(header: bytes, payload: bytes = b"") -> bytes:
    return wire.MAGIC + struct.pack(">IQ", len(header), len(payload)) + header + payload


def _decode_frame(frame: bytes, limits=wire.WireLimits()):
    read, write = os.pipe()
    try:
        os.write(write, frame)
        os.close(write)
        return wire.read_message(read, limits, deadline=None)
    finally:
        os.close(read)


@pytest.mark.parametrize("frame, message", [
    (pickle.dumps({"op": "reply"}), "bad frame start"),
    (_frame(b"not json"), "not valid JSON"),
    (_frame(b"[1, 2]"), "must be a JSON object"),
    (_frame(b'{"op": "reply"}'), "lacks its '$arrays' table"),
    (_frame(json.dumps({"v": {"$array": "a0"}, "$arrays": {"a0": {"kind": "numpy"}}}).encode(), b"\xff" * 32),
     "not valid safetensors"),
    (_frame(json.dumps({"v": {"$array": "zz"}, "$arrays": {}}).encode()), "bad array reference"),
    (_frame(json.dumps({"$evil": 1, "$arrays": {}}).encode()), "unexpected key"),
    (wire.MAGIC + struct.pack(">IQ", 2**32 - 1, 0), "exceeds the"),
    (wire.MAGIC + struct.pack(">IQ", 10, 2**63), "exceeds the"),
    (_frame(b'{"a": 1'), "not valid JSON"),
], ids=["pickle", "not-json", "not-object", "no-table", "bad-safetensors", "dangling-ref", "dollar-key",
        "huge-header", "huge-payload", "truncated-json"])
def test_malformed_frames_are_refused(frame, message):
    with pytest.raises(wire.WireError, match=message.replace("$", r"\$").replace("(", r"\(")):
        _decode_frame(frame)


def test_array_table_must_match_payload():
    good = wire.encode({"v": np.zeros(3)})
    header_len, _ = struct.unpack(">IQ", good[len(wire.MAGIC) : wire.PREFIX_SIZE])
    header = json.loads(good[wire.PREFIX_SIZE : wire.PREFIX_SIZE + header_len])
    payload = good[wire.PREFIX_SIZE + header_len :]
    header["$arrays"]["a0"]["kind"] = "pickle"
    with pytest.raises(wire.WireError, match="bad array description"):
        wire.decode(json.dumps(header).encode(), payload)
    header["$arrays"] = {"a0": {"kind": "torch", "dtype": "int8"}}
    with pytest.raises(wire.WireError, match="claims torch dtype"):
        wire.decode(json.dumps(header).encode(), payload)


def test_value_count_and_depth_are_capped():
    with pytest.raises(wire.WireError, match="more than 10 values"):
        roundtrip({"v": list(range(20))}, wire.WireLimits(max_values=10))
    deep = []
    for _ in range(wire.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(wire.WireError, match="nested deeper"):
        wire.encode({"v": deep})


def test_truncated_stream_and_deadline():
    with pytest.raises(wire.WireClosed):
        _decode_frame(wire.encode({"v": 1})[:-3])
    read, write = os.pipe()
    try:
        with pytest.raises(wire.WireTimeout):
            import time

            wire.read_message(read, deadline=time.monotonic() + 0.05)
    finally:
        os.close(read)
        os.close(write)
