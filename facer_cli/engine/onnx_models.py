"""Thin ONNX Runtime wrappers of the InsightFace models facer runs, without importing insightface.

`from insightface.model_zoo import …` runs insightface's package `__init__`
(its add-ons, scikit-image, scipy, requests, …): hundreds of milliseconds and
tens of MB per process for code facer never calls. These classes reproduce,
line for line where it matters, what insightface's `SCRFD`, `Landmark`,
`ArcFaceONNX` and `Attribute` do with a session — same public attributes, same
pre-processing, same decoding — so their outputs are bit-identical, and
`get_model` routes a file to a class by the same rules as `model_zoo`'s router.

Only numpy, OpenCV and ONNX Runtime are used; OpenCV and ONNX Runtime are
imported when a model is loaded or run. The ONNX graph's first node names
(which decide a model's input normalisation, as in insightface) are read with
a few lines of protobuf wire-format parsing (`engine.protobuf_wire`) instead of the `onnx` package.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facer_cli.engine.protobuf_wire import fields

# insightface's fallback detector sizes when `prepare` was never given one.
DEFAULT_DET_SIZES = [(128, 128), (640, 640)]
# How many leading graph nodes insightface inspects to tell an MXNet export (normalisation inside the graph).
NODES_INSPECTED = 8

# -- ONNX graph: the first node names, from the protobuf wire format ----------

# ModelProto.graph, GraphProto.node and NodeProto.name field numbers (onnx.proto).
_MODEL_GRAPH, _GRAPH_NODE, _NODE_NAME = 7, 1, 3


def first_node_names(path: Path | str, count: int = NODES_INSPECTED) -> list[str]:
    """Names of the first `count` nodes of an ONNX model's graph, as `onnx.load(path).graph.node[:count]` gives."""
    data = memoryview(Path(path).read_bytes())
    names: list[str] = []
    # Repeated message fields merge by concatenation, so every graph field is walked in order.
    for number, graph in fields(data):
        if number != _MODEL_GRAPH or graph is None:
            continue
        for field_number, node in fields(graph):
            if field_number != _GRAPH_NODE or node is None:
                continue
            name = ""  # protobuf: the last occurrence of a scalar field wins
            for node_field, value in fields(node):
                if node_field == _NODE_NAME and value is not None:
                    name = bytes(value).decode("utf-8")
            names.append(name)
            if len(names) == count:
                return names
    return names


def normalisation(node_names: Sequence[str], bn_data_rule: bool, default_std: float) -> tuple[float, float]:
    """insightface's (input_mean, input_std): (0, 1) when the graph subtracts and multiplies by itself (MXNet)."""
    find_sub = any(n.startswith(("Sub", "_minus")) for n in node_names)
    find_mul = any(n.startswith(("Mul", "_mul")) for n in node_names)
    if bn_data_rule and "bn_data" in node_names[:3]:
        find_sub = find_mul = True
    return (0.0, 1.0) if find_sub and find_mul else (127.5, default_std)


# -- sessions -----------------------------------------------------------------


def open_session(path: Path | str, providers: Sequence[Any] | None = None, sess_options: Any = None) -> Any:
    """An ONNX Runtime session opened the way insightface's router opens one."""
    import onnxruntime

    providers = list(providers) if providers else _default_providers()
    if "CUDAExecutionProvider" in _provider_names(providers):
        # insightface asks ONNX Runtime to find the CUDA/cuDNN libraries installed by pip first.
        preload = getattr(onnxruntime, "preload_dlls", None)
        if callable(preload):
            # It prints "Failed to load …" on stdout where a library is missing: that would corrupt
            # a command's --json; the fallback itself is reported by `modelpack.cpu_fallback_note`.
            with contextlib.redirect_stdout(sys.stderr):
                preload()
    return onnxruntime.InferenceSession(str(path), sess_options=sess_options, providers=providers)


def _provider_names(providers: Sequence[Any]) -> list[str]:
    return [str(p[0] if isinstance(p, tuple) else p) for p in providers]


def _default_providers() -> list[str]:
    """insightface's choice when none is given: CoreML, else CUDA, else CPU, with CPU as fallback."""
    import onnxruntime

    available = list(dict.fromkeys(onnxruntime.get_available_providers()))
    for provider in ("CoreMLExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"):
        if provider in available:
            extra = (
                ["CPUExecutionProvider"]
                if provider != "CPUExecutionProvider" and "CPUExecutionProvider" in available
                else []
            )
            return [provider, *extra]
    return available[:1]


def _fixed_size(shape: Sequence[Any]) -> tuple[int, int] | None:
    """(width, height) when an NCHW shape fixes both spatial axes, else None."""
    if len(shape) < 4 or not all(isinstance(v, int) and v > 0 for v in shape[2:4]):
        return None
    return int(shape[3]), int(shape[2])


class _OnnxModel:
    """What every wrapped model shares: its file, session, input and output names."""

    taskname: str

    def __init__(self, model_file: Path | str, session: Any):
        self.model_file = str(model_file)
        self.session = session
        inputs = session.get_inputs()
        self.input_name: str = inputs[0].name
        self.input_shape: list[Any] = inputs[0].shape
        self.output_names: list[str] = [o.name for o in session.get_outputs()]

    def prepare(self, ctx_id: int, **kwargs: Any) -> None:
        if ctx_id < 0:
            self.session.set_providers(["CPUExecutionProvider"])


class _SingleOutputModel(_OnnxModel):
    """A crop-in, one-tensor-out model (landmarks, recognition, attributes)."""

    def __init__(self, model_file: Path | str, session: Any, input_mean: float, input_std: float):
        super().__init__(model_file, session)
        self.input_mean = input_mean
        self.input_std = input_std
        self.input_size: tuple[Any, ...] = tuple(self.input_shape[2:4][::-1])
        if len(self.output_names) != 1:
            raise ValueError(f"{model_file}: expected one output, found {len(self.output_names)}")
        self.output_shape: list[Any] = session.get_outputs()[0].shape

    def blob(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import cv2

        mean = (self.input_mean,) * 3
        blob = cv2.dnn.blobFromImages(list(images), 1.0 / self.input_std, self.input_size, mean, swapRB=True)
        return np.ascontiguousarray(blob, dtype=np.float32)

    def run(self, blob: np.ndarray) -> np.ndarray:
        return self.session.run(self.output_names, {self.input_name: blob})[0]


class Landmark(_SingleOutputModel):
    """2-D 106-point or 3-D 68-point landmarks on a 192×192 crop (insightface's `Landmark`, less `get`)."""

    def __init__(self, model_file: Path | str, session: Any):
        mean, std = normalisation(first_node_names(model_file), bn_data_rule=True, default_std=128.0)
        super().__init__(model_file, session, mean, std)
        if self.output_shape[1] == 3309:
            self.lmk_dim, self.lmk_num = 3, 68
        else:
            self.lmk_dim, self.lmk_num = 2, self.output_shape[1] // 2
        # insightface then fits its mean shape for a pose; facer computes pose itself (facer_cli.engine.pose).
        self.require_pose = self.lmk_dim == 3
        self.taskname = f"landmark_{self.lmk_dim}d_{self.lmk_num}"


class ArcFace(_SingleOutputModel):
    """Face recognition: an aligned crop in, one embedding out (insightface's `ArcFaceONNX`, less `get`)."""

    def __init__(self, model_file: Path | str, session: Any):
        mean, std = normalisation(first_node_names(model_file), bn_data_rule=False, default_std=127.5)
        super().__init__(model_file, session, mean, std)
        self.taskname = "recognition"

    def get_feat(self, imgs: np.ndarray | list[np.ndarray]) -> np.ndarray:
        return self.run(self.blob(imgs if isinstance(imgs, list) else [imgs]))

    def forward(self, batch_data: np.ndarray) -> np.ndarray:
        blob = (batch_data - self.input_mean) / self.input_std
        return self.run(np.ascontiguousarray(blob, dtype=np.float32))

    @staticmethod
    def compute_sim(feat1: np.ndarray, feat2: np.ndarray) -> float:
        feat1, feat2 = feat1.ravel(), feat2.ravel()
        return float(np.dot(feat1, feat2) / (np.linalg.norm(feat1) * np.linalg.norm(feat2)))


class Attribute(_SingleOutputModel):
    """Gender and age (or another attribute vector) on a 96×96 crop; routed like insightface, unused by facer."""

    def __init__(self, model_file: Path | str, session: Any):
        mean, std = normalisation(first_node_names(model_file), bn_data_rule=True, default_std=128.0)
        super().__init__(model_file, session, mean, std)
        width = self.output_shape[1]
        self.taskname = "genderage" if width == 3 else f"attribute_{width}"


# -- SCRFD detector -------------------------------------------------------------


def distance2bbox(points: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Boxes (x1, y1, x2, y2) from anchor centres and distances to the four sides."""
    x1 = points[:, 0] - distance[:, 0]
    y1 = points[:, 1] - distance[:, 1]
    x2 = points[:, 0] + distance[:, 2]
    y2 = points[:, 1] + distance[:, 3]
    return np.stack([x1, y1, x2, y2], axis=-1)


def distance2kps(points: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Keypoints (x, y, x, y, …) from anchor centres and offsets."""
    preds = []
    for i in range(0, distance.shape[1], 2):
        preds.append(points[:, i % 2] + distance[:, i])
        preds.append(points[:, i % 2 + 1] + distance[:, i + 1])
    return np.stack(preds, axis=-1)


def anchor_centers(height: int, width: int, stride: int, num_anchors: int) -> np.ndarray:
    """Pixel centres of a feature map's anchors, row by row, each repeated per anchor."""
    rows, columns = np.mgrid[:height, :width]
    centers = np.stack([columns, rows], axis=-1).astype(np.float32)
    centers = (centers * stride).reshape((-1, 2))
    if num_anchors > 1:
        centers = np.stack([centers] * num_anchors, axis=1).reshape((-1, 2))
    return centers


def nms(dets: np.ndarray, thresh: float) -> list[int]:
    """Greedy non-maximum suppression over rows (x1, y1, x2, y2, score); insightface's +1 pixel areas."""
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def _normalize_input_sizes(input_size: Any) -> list[tuple[int, int]]:
    """One (width, height) or a list of them; (0, 0) means insightface's defaults."""
    if isinstance(input_size, np.ndarray):
        input_size = input_size.tolist()
    is_list = (
        isinstance(input_size, (list, tuple))
        and len(input_size) > 0
        and isinstance(input_size[0], (list, tuple, np.ndarray))
    )
    sizes: list[tuple[int, int]] = []
    for item in input_size if is_list else [input_size]:
        item = item.tolist() if isinstance(item, np.ndarray) else item
        if len(item) != 2:
            raise ValueError("det_size must be a pair or a list of pairs")
        width, height = int(item[0]), int(item[1])
        if width == 0 and height == 0:
            sizes += [s for s in DEFAULT_DET_SIZES if s not in sizes]
            continue
        if width <= 0 or height <= 0:
            raise ValueError("det_size values must be positive")
        if (width, height) not in sizes:
            sizes.append((width, height))
    return sizes


# (feature maps, strides, anchors per cell, keypoints) by the detector's output count.
SCRFD_LAYOUTS = {
    6: (3, (8, 16, 32), 2, False),
    9: (3, (8, 16, 32), 2, True),
    10: (5, (8, 16, 32, 64, 128), 1, False),
    15: (5, (8, 16, 32, 64, 128), 1, True),
}


class SCRFD(_OnnxModel):
    """The SCRFD face detector (insightface's `SCRFD`): boxes with scores, and 5 keypoints per face.

    insightface runs a dynamic-size detector through one extra fixed-size session
    per input size; this wrapper runs the file's own session for every size (the
    outputs are the same: `tests/test_onnx_models.py`). After `prepare`, `detect`
    may run in several threads at once (ONNX Runtime's `run` is thread-safe and
    the anchor cache is guarded).
    """

    taskname = "detection"

    def __init__(self, model_file: Path | str, session: Any):
        super().__init__(model_file, session)
        outputs = session.get_outputs()
        self.batched = len(outputs[0].shape) == 3
        self.input_mean, self.input_std = 127.5, 128.0
        self.nms_thresh, self.det_thresh = 0.4, 0.5
        self.center_cache: dict[tuple[int, int, int], np.ndarray] = {}
        self._cache_lock = threading.Lock()
        self.static_input_size = _fixed_size(self.input_shape)
        self.input_sizes = [self.static_input_size] if self.static_input_size else list(DEFAULT_DET_SIZES)
        self.input_size = self.input_sizes[-1]
        # Other output counts (insightface leaves them without a layout) fail at detect.
        self.fmc, strides, self._num_anchors, self.use_kps = SCRFD_LAYOUTS.get(len(outputs), (0, (), 1, False))
        self._feat_stride_fpn = list(strides)

    def prepare(self, ctx_id: int, **kwargs: Any) -> None:
        super().prepare(ctx_id)
        if kwargs.get("nms_thresh") is not None:
            self.nms_thresh = kwargs["nms_thresh"]
        if kwargs.get("det_thresh") is not None:
            self.det_thresh = kwargs["det_thresh"]
        if kwargs.get("input_size") is not None:
            if self.static_input_size is not None:  # a fixed-size graph takes nothing else
                self.input_sizes = [self.static_input_size]
            else:
                self.input_sizes = _normalize_input_sizes(kwargs["input_size"])
            self.input_size = self.input_sizes[-1]

    def _session_for_input_size(self, input_size: tuple[int, int]) -> Any:
        """The session that runs this input size: always the one session (kept for callers of insightface's)."""
        if self.static_input_size is not None and tuple(input_size) != self.static_input_size:
            raise ValueError(
                f"static SCRFD input only supports resolution {self.static_input_size}, received {input_size}"
            )
        return self.session

    def _anchor_centers(self, height: int, width: int, stride: int) -> np.ndarray:
        """The anchor centres of a feature map, cached. Safe from several threads: a cached array is
        read-only and only ever added, under a lock (two threads may compute the same one; the
        first stored is kept and both are equal)."""
        key = (height, width, stride)
        centers = self.center_cache.get(key)
        if centers is None:
            centers = anchor_centers(height, width, stride, self._num_anchors)
            centers.flags.writeable = False
            with self._cache_lock:
                if len(self.center_cache) < 100:
                    centers = self.center_cache.setdefault(key, centers)
        return centers

    def forward(self, img: np.ndarray, threshold: float) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Run the network on a canvas of the input size; candidates above `threshold` per stride."""
        import cv2

        input_size = tuple(img.shape[0:2][::-1])
        mean = (self.input_mean,) * 3
        blob = cv2.dnn.blobFromImage(img, 1.0 / self.input_std, input_size, mean, swapRB=True)
        blob = np.ascontiguousarray(blob, dtype=np.float32)
        net_outs = self._session_for_input_size(input_size).run(self.output_names, {self.input_name: blob})
        input_height, input_width = blob.shape[2], blob.shape[3]
        scores_list, bboxes_list, kpss_list = [], [], []
        for idx, stride in enumerate(self._feat_stride_fpn):
            scores, bbox_preds, kps_preds = self._stride_outputs(net_outs, idx)
            centers = self._anchor_centers(input_height // stride, input_width // stride, stride)
            pos_inds = np.where(scores >= threshold)[0]
            bboxes = distance2bbox(centers, bbox_preds * stride)
            scores_list.append(scores[pos_inds])
            bboxes_list.append(bboxes[pos_inds])
            if self.use_kps:
                kpss = distance2kps(centers, kps_preds * stride)
                kpss_list.append(kpss.reshape((kpss.shape[0], -1, 2))[pos_inds])
        return scores_list, bboxes_list, kpss_list

    def _stride_outputs(self, net_outs: list[np.ndarray], idx: int) -> tuple[np.ndarray, np.ndarray, Any]:
        """Scores, box distances and keypoint offsets of one stride (first batch item of a batched model)."""
        pick = (lambda out: out[0]) if self.batched else (lambda out: out)
        fmc = self.fmc
        kps = pick(net_outs[idx + fmc * 2]) if self.use_kps else None
        return pick(net_outs[idx]), pick(net_outs[idx + fmc]), kps

    def _detect_candidates(
        self, img: np.ndarray, input_size: tuple[int, int], threshold: float
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Candidates of one input size, in image coordinates, best score first (before NMS)."""
        import cv2

        im_ratio = float(img.shape[0]) / img.shape[1]
        model_ratio = float(input_size[1]) / input_size[0]
        if im_ratio > model_ratio:
            new_height = input_size[1]
            new_width = int(new_height / im_ratio)
        else:
            new_width = input_size[0]
            new_height = int(new_width * im_ratio)
        det_scale = float(new_height) / img.shape[0]
        det_img = np.zeros((input_size[1], input_size[0], 3), dtype=np.uint8)
        det_img[:new_height, :new_width, :] = cv2.resize(img, (new_width, new_height))
        scores_list, bboxes_list, kpss_list = self.forward(det_img, threshold)
        if sum(score.size for score in scores_list) == 0:
            return np.empty((0, 5), dtype=np.float32), np.empty((0, 5, 2), dtype=np.float32) if self.use_kps else None
        scores = np.vstack(scores_list)
        order = np.argsort(-scores.ravel(), kind="stable")
        bboxes = np.vstack(bboxes_list) / det_scale
        pre_det = np.hstack((bboxes, scores)).astype(np.float32, copy=False)[order, :]
        if not self.use_kps:
            return pre_det, None
        return pre_det, (np.vstack(kpss_list) / det_scale)[order, :, :]

    def _resolve_input_sizes(self, input_size: Any) -> list[tuple[int, int]]:
        if self.static_input_size is not None:
            return [self.static_input_size]
        if input_size is not None:
            return _normalize_input_sizes(input_size)
        return list(self.input_sizes) or [self.input_size]

    def detect(
        self,
        img: np.ndarray,
        input_size: Any = None,
        max_num: int = 0,
        metric: str = "default",
        det_thresh: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Faces as (boxes [N, 5]: x1, y1, x2, y2, score; keypoints [N, 5, 2] or None), best score first."""
        threshold = self.det_thresh if det_thresh is None else float(det_thresh)
        found = [self._detect_candidates(img, size, threshold) for size in self._resolve_input_sizes(input_size)]
        found = [(dets, kpss) for dets, kpss in found if dets.shape[0] > 0]
        if not found:
            return np.empty((0, 5), dtype=np.float32), np.empty((0, 5, 2), dtype=np.float32) if self.use_kps else None
        pre_det = np.vstack([dets for dets, _ in found]).astype(np.float32, copy=False)
        order = np.argsort(-pre_det[:, 4], kind="stable")
        pre_det = pre_det[order, :]
        kpss = np.vstack([k for _, k in found if k is not None])[order, :, :] if self.use_kps else None
        keep = nms(pre_det, self.nms_thresh)
        det = pre_det[keep, :]
        kpss = kpss[keep, :, :] if kpss is not None else None
        if max_num > 0 and det.shape[0] > max_num:
            det, kpss = self._largest(img, det, kpss, max_num, metric)
        return det, kpss

    @staticmethod
    def _largest(
        img: np.ndarray, det: np.ndarray, kpss: np.ndarray | None, max_num: int, metric: str
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The `max_num` largest faces ("max"), or by default the largest nearest the centre."""
        area = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])
        img_center = img.shape[0] // 2, img.shape[1] // 2
        offsets = np.vstack([(det[:, 0] + det[:, 2]) / 2 - img_center[1], (det[:, 1] + det[:, 3]) / 2 - img_center[0]])
        offset_dist_squared = np.sum(np.power(offsets, 2.0), 0)
        values = area if metric == "max" else area - offset_dist_squared * 2.0
        bindex = np.argsort(values)[::-1][0:max_num]
        return det[bindex, :], kpss[bindex, :] if kpss is not None else None


# -- router -----------------------------------------------------------------------

OnnxModel = SCRFD | Landmark | ArcFace | Attribute


def route(model_file: Path | str, session: Any) -> OnnxModel | None:
    """The wrapper for a session, by insightface's router rules; None for a model facer cannot use."""
    inputs = session.get_inputs()
    shape = inputs[0].shape
    if len(session.get_outputs()) >= 5:
        return SCRFD(model_file, session)
    if len(shape) != 4 or not all(isinstance(v, int) for v in shape[2:4]):
        return None  # insightface fails here with a TypeError; nothing of facer's has a dynamic crop size
    height, width = shape[2], shape[3]
    if (height, width) == (192, 192):
        return Landmark(model_file, session)
    if (height, width) == (96, 96):
        return Attribute(model_file, session)
    if len(inputs) == 2 and (height, width) == (128, 128):
        return None  # insightface's face swapper: not a facer model
    if height == width and height >= 112 and height % 16 == 0:
        return ArcFace(model_file, session)
    return None


def get_model(
    model_file: Path | str, providers: Sequence[Any] | None = None, sess_options: Any = None
) -> OnnxModel | None:
    """Open one ONNX file and wrap it by what it is, like `insightface.model_zoo.get_model(path, …)`."""
    if not Path(model_file).is_file():
        raise FileNotFoundError(f"model file {model_file} should exist")
    return route(model_file, open_session(model_file, providers, sess_options))
