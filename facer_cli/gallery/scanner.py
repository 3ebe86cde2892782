"""The int8 scan: probe codes x gallery codes through ONNX Runtime's `MatMulInteger`, exactly.

Its prepacked AVX2 kernel is the fastest exact integer dot product this package already depends
on (numpy has no integer BLAS; see benchmarks/bench_identify.py). The one-node model is written
by hand in the protobuf wire format (`facer_cli.engine.protobuf_wire`), so the `onnx` package is
never imported."""

from __future__ import annotations

import os
import threading

import numpy as np

from facer_cli.engine.protobuf_wire import bytes_field, varint_field
from facer_cli.gallery.quantise import PROBE_ZERO_POINT


class Int8Scanner:
    """probe codes [k, D] (uint8, zero point 64) x gallery codes [D, N] (int8) -> int32 [k, N], exactly.

    The gallery codes are a constant initializer, so ONNX Runtime prepacks them once into its
    kernel's layout (its own copy: the caller may drop the codes' pages afterwards)."""

    def __init__(self, codes_by_dimension: np.ndarray, threads: int | None = None):
        import onnxruntime as ort  # deferred: only a non-empty gallery needs it

        self.dimension, self.rows = codes_by_dimension.shape
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        options.log_severity_level = 3
        options.add_external_initializers(["codes"], [ort.OrtValue.ortvalue_from_numpy(codes_by_dimension)])
        self.session = ort.InferenceSession(
            _matmul_integer_model(self.dimension, self.rows), options, providers=["CPUExecutionProvider"]
        )

    def dots(self, probe_codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The integer dots; into `out` (int32 [k, N]) when given, which ONNX Runtime fills in place."""
        codes = np.ascontiguousarray(probe_codes, dtype=np.uint8)
        if out is None:
            return self.session.run(None, {"probe": codes})[0]
        binding = self.session.io_binding()
        binding.bind_cpu_input("probe", codes)
        binding.bind_output("dots", "cpu", 0, np.int32, list(out.shape), out.ctypes.data)
        self.session.run_with_iobinding(binding)
        return out


def _matmul_integer_model(dimension: int, rows: int) -> bytes:
    """The one-node ONNX model `dots = MatMulInteger(probe, codes, 64)`, serialised by hand (the
    protobuf wire format of onnx.proto3): importing the `onnx` package would cost a cold
    `facer identify` about 0.4 s. A test checks it against the model `onnx.helper` builds."""

    number, text = varint_field, bytes_field

    def value_info(name: bytes, elem_type: int, dims: list[int | bytes]) -> bytes:
        shape = b"".join(text(1, text(2, d) if isinstance(d, bytes) else number(1, d)) for d in dims)
        return text(1, name) + text(2, text(1, number(1, elem_type) + text(2, shape)))

    uint8, int8, int32 = 2, 3, 6
    zero_point = number(2, uint8) + text(8, b"probe_zero_point") + text(9, bytes([PROBE_ZERO_POINT]))
    codes = (
        number(1, dimension)
        + number(1, rows)
        + number(2, int8)
        + text(8, b"codes")
        + text(13, text(1, b"location") + text(2, b"gallery-codes"))
        + number(14, 1)  # EXTERNAL: supplied by add_external_initializers, never copied here
    )
    node = text(1, b"probe") + text(1, b"codes") + text(1, b"probe_zero_point") + text(2, b"dots")
    node += text(4, b"MatMulInteger")
    graph = (
        text(1, node)
        + text(2, b"gallery_scan")
        + text(5, zero_point)
        + text(5, codes)
        + text(11, value_info(b"probe", uint8, [b"probes", dimension]))
        + text(12, value_info(b"dots", int32, [b"probes", rows]))
    )
    return number(1, 8) + text(7, graph) + text(8, text(1, b"") + number(2, 13))


class ScanWork(threading.local):
    """One probe's buffers over N rows, per thread, reused by every query: at a million rows,
    fresh 4-8 MB arrays per query cost more in page faults (~15 ms) than the arithmetic."""

    def __init__(self) -> None:
        self.rows = -1
        self.dots = self.approx = self.part = np.empty(0)

    def for_rows(self, rows: int) -> ScanWork:
        if rows != self.rows:
            self.dots = np.empty((2, rows), np.int32)
            self.approx = np.empty(rows, np.float32)
            self.part = np.empty(rows, np.float32)
            self.rows = rows
        return self
