from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConfigValue(_message.Message):
    __slots__ = ("bool_value", "int_value", "float_value", "string_value")
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    bool_value: bool
    int_value: int
    float_value: float
    string_value: str
    def __init__(self, bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., string_value: _Optional[str] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("node_id", "max_wait_ms")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    max_wait_ms: int
    def __init__(self, node_id: _Optional[str] = ..., max_wait_ms: _Optional[int] = ...) -> None: ...

class TaskHeader(_message.Message):
    __slots__ = ("task_id", "job_id", "round_number", "stage", "node_id", "config", "payload_size")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ConfigValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ConfigValue, _Mapping]] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    job_id: str
    round_number: int
    stage: str
    node_id: str
    config: _containers.MessageMap[str, ConfigValue]
    payload_size: int
    def __init__(self, task_id: _Optional[bytes] = ..., job_id: _Optional[str] = ..., round_number: _Optional[int] = ..., stage: _Optional[str] = ..., node_id: _Optional[str] = ..., config: _Optional[_Mapping[str, ConfigValue]] = ..., payload_size: _Optional[int] = ...) -> None: ...

class JobEnded(_message.Message):
    __slots__ = ("job_id", "state", "reason", "rounds_completed", "total_rounds", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: str
    reason: str
    rounds_completed: int
    total_rounds: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., rounds_completed: _Optional[int] = ..., total_rounds: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class TaskChunk(_message.Message):
    __slots__ = ("header", "data", "ended")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    header: TaskHeader
    data: bytes
    ended: JobEnded
    def __init__(self, header: _Optional[_Union[TaskHeader, _Mapping]] = ..., data: _Optional[bytes] = ..., ended: _Optional[_Union[JobEnded, _Mapping]] = ...) -> None: ...

class ResultHeader(_message.Message):
    __slots__ = ("task_id", "job_id", "round_number", "stage", "node_id", "num_examples", "metrics", "payload_size", "error")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    job_id: str
    round_number: int
    stage: str
    node_id: str
    num_examples: int
    metrics: _containers.ScalarMap[str, float]
    payload_size: int
    error: str
    def __init__(self, task_id: _Optional[bytes] = ..., job_id: _Optional[str] = ..., round_number: _Optional[int] = ..., stage: _Optional[str] = ..., node_id: _Optional[str] = ..., num_examples: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., payload_size: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ResultChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: ResultHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[ResultHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class PushReply(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    def __init__(self, task_id: _Optional[bytes] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConnectedNode(_message.Message):
    __slots__ = ("node_id", "seconds_since_seen", "is_busy")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SECONDS_SINCE_SEEN_FIELD_NUMBER: _ClassVar[int]
    IS_BUSY_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    seconds_since_seen: float
    is_busy: bool
    def __init__(self, node_id: _Optional[str] = ..., seconds_since_seen: _Optional[float] = ..., is_busy: _Optional[bool] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("federation", "coordinator", "job_id", "round_number", "total_rounds", "stage", "nodes", "metrics", "uptime_s", "state", "reason", "final_model", "failures", "refused")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class FailuresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class RefusedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FEDERATION_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FINAL_MODEL_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    federation: str
    coordinator: str
    job_id: str
    round_number: int
    total_rounds: int
    stage: str
    nodes: _containers.RepeatedCompositeFieldContainer[ConnectedNode]
    metrics: _containers.ScalarMap[str, float]
    uptime_s: float
    state: str
    reason: str
    final_model: str
    failures: _containers.ScalarMap[str, str]
    refused: _containers.ScalarMap[str, str]
    def __init__(self, federation: _Optional[str] = ..., coordinator: _Optional[str] = ..., job_id: _Optional[str] = ..., round_number: _Optional[int] = ..., total_rounds: _Optional[int] = ..., stage: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[ConnectedNode, _Mapping]]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., uptime_s: _Optional[float] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., final_model: _Optional[str] = ..., failures: _Optional[_Mapping[str, str]] = ..., refused: _Optional[_Mapping[str, str]] = ...) -> None: ...
