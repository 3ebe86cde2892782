"""The engine: InsightFace models through ONNX Runtime, turning one frame into a report per face
(box, pose, quality measurements, embedding) and the gates' decision. Submodules are imported
where used, so importing this package loads nothing heavy."""
