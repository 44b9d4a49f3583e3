"""One verified bundle's model, run with ONNX Runtime: requests checked, answers as OIP tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sovereign_ai.edge.bundle import Bundle
from sovereign_ai.errors import ConfigError, InferenceRequestError
from sovereign_ai.serving.protocol import (
    InferenceRequest,
    MetadataTensor,
    ModelMetadata,
    ResponseOutput,
    decode_tensor,
    encode_tensor,
)

__all__ = ["LABEL_OUTPUT", "ServedModel"]

LABEL_OUTPUT = "label"
"""The BYTES output of predicted class names, added when the bundle names its classes."""

Feeds = dict[str, np.ndarray[Any, Any]]


class ServedModel:
    """A bundle's model in an ONNX Runtime session, with the checks of its inputs.

    Parameters
    ----------
    bundle
        A bundle already checked by :func:`sovereign_ai.serving.verify_bundle` (signature,
        digests and, where asked, the signer's CA).
    intra_op_threads
        ONNX Runtime's threads inside one operator. 1 suits small tabular models on a small
        machine: the server's event loop needs a core too, and concurrency comes from batching.

    Raises
    ------
    ConfigError
        If ONNX Runtime cannot load the graph, or the graph's inputs are not the manifest's.
    """

    def __init__(self, bundle: Bundle, *, intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        manifest = bundle.manifest
        self.name = manifest.name
        self.version = manifest.version
        self.class_names = manifest.class_names
        self.inputs = tuple(MetadataTensor(**spec.model_dump()) for spec in manifest.inputs)
        self.outputs = tuple(MetadataTensor(**spec.model_dump()) for spec in manifest.outputs)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(bundle.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime raises its own unrelated exception classes
            raise ConfigError(f"ONNX Runtime cannot load {bundle.model_path}: {exc}") from exc
        graph_inputs = sorted(i.name for i in self.session.get_inputs())
        if graph_inputs != sorted(spec.name for spec in self.inputs):
            raise ConfigError(
                f"The graph of {self.name!r} takes inputs {graph_inputs}; its manifest says "
                f"{sorted(spec.name for spec in self.inputs)}."
            )
        self._output_names = [spec.name for spec in self.outputs]
        self._label_source = self._find_label_source()

    @property
    def is_batchable(self) -> bool:
        """Whether requests can be stacked: every input has any number of rows (shape[0] -1)."""
        return all(len(spec.shape) > 0 and spec.shape[0] == -1 for spec in self.inputs)

    def metadata(self, versions: Sequence[str] | None = None) -> ModelMetadata:
        """The model's OIP metadata (``versions``: every version served under this name)."""
        outputs = list(self.outputs)
        if self._label_source is not None:
            outputs.append(MetadataTensor(name=LABEL_OUTPUT, datatype="BYTES", shape=(-1,)))
        return ModelMetadata(
            name=self.name,
            versions=list(versions or [self.version]),
            platform="onnxruntime",
            inputs=list(self.inputs),
            outputs=outputs,
        )

    def feeds(self, request: InferenceRequest) -> Feeds:
        """The request's inputs as arrays, each checked against the manifest.

        Raises
        ------
        InferenceRequestError
            If an input is missing, unknown or given twice, or its datatype or shape is wrong,
            or the inputs disagree on the number of rows, or an unknown output is asked for.
        """
        given = {tensor.name: tensor for tensor in request.inputs}
        if len(given) != len(request.inputs):
            raise InferenceRequestError("An input is given twice; give each input once.")
        expected = {spec.name for spec in self.inputs}
        if missing := sorted(expected - set(given)):
            raise InferenceRequestError(
                f"Missing input(s) {missing}; model {self.name!r} takes {sorted(expected)}."
            )
        if unknown := sorted(set(given) - expected):
            raise InferenceRequestError(
                f"Unknown input(s) {unknown}; model {self.name!r} takes {sorted(expected)}."
            )
        feeds = {spec.name: decode_tensor(given[spec.name], expected=spec) for spec in self.inputs}
        if self.is_batchable and len({array.shape[0] for array in feeds.values()}) > 1:
            raise InferenceRequestError("The inputs disagree on their number of rows (shape[0]).")
        for wanted in request.outputs or ():
            if wanted.name not in self._output_names and not (
                wanted.name == LABEL_OUTPUT and self._label_source is not None
            ):
                raise InferenceRequestError(
                    f"Unknown output {wanted.name!r}; model {self.name!r} answers "
                    f"{self._output_names + ([LABEL_OUTPUT] if self._label_source else [])}."
                )
        return feeds

    def run(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Feeds:
        """One ONNX Runtime call: every output of the graph by name."""
        results = self.session.run(self._output_names, dict(feeds))
        return dict(zip(self._output_names, results, strict=True))

    def answer(self, results: Mapping[str, np.ndarray[Any, Any]], request: InferenceRequest) -> (
        list[ResponseOutput]
    ):  # fmt: skip
        """The outputs the request asked for (all by default), plus the predicted labels."""
        wanted = [o.name for o in request.outputs] if request.outputs else None
        outputs = [
            encode_tensor(name, results[name])
            for name in self._output_names
            if wanted is None or name in wanted
        ]
        if self._label_source is not None and (wanted is None or LABEL_OUTPUT in wanted):
            names = np.asarray(self.class_names, dtype=object)
            scores = results[self._label_source]  # (rows, classes)
            outputs.append(encode_tensor(LABEL_OUTPUT, names[np.argmax(scores, axis=-1)]))
        return outputs

    def _find_label_source(self) -> str | None:
        """The first output of shape (rows, classes) whose classes the manifest names."""
        if not self.class_names or LABEL_OUTPUT in self._output_names:
            return None
        for spec in self.outputs:
            if len(spec.shape) == 2 and spec.shape[1] == len(self.class_names):
                return spec.name
        return None
