import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tuneserve.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Model(_message.Message):
    __slots__ = ("name", "task", "serving_version", "versions", "load_error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    SERVING_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    LOAD_ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    task: _common_pb2.Task
    serving_version: int
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    load_error: str
    def __init__(self, name: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.Task, str]] = ..., serving_version: _Optional[int] = ..., versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., load_error: _Optional[str] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("version", "task", "labels", "multi_label", "max_length", "quantization", "metrics", "created_at", "execution_provider", "base_model", "serving", "lineage")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MULTI_LABEL_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    version: int
    task: _common_pb2.Task
    labels: _containers.RepeatedScalarFieldContainer[str]
    multi_label: bool
    max_length: int
    quantization: _common_pb2.Quantization
    metrics: _containers.ScalarMap[str, float]
    created_at: _timestamp_pb2.Timestamp
    execution_provider: str
    base_model: str
    serving: bool
    lineage: Lineage
    def __init__(self, version: _Optional[int] = ..., task: _Optional[_Union[_common_pb2.Task, str]] = ..., labels: _Optional[_Iterable[str]] = ..., multi_label: _Optional[bool] = ..., max_length: _Optional[int] = ..., quantization: _Optional[_Union[_common_pb2.Quantization, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., execution_provider: _Optional[str] = ..., base_model: _Optional[str] = ..., serving: _Optional[bool] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ...) -> None: ...

class Lineage(_message.Message):
    __slots__ = ("base_model", "training_data", "validation_data", "tuneserve_version", "tuneserve_git_commit", "seed", "device", "world_size", "search")
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    TRAINING_DATA_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DATA_FIELD_NUMBER: _ClassVar[int]
    TUNESERVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    TUNESERVE_GIT_COMMIT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    base_model: BaseModelLineage
    training_data: DataLineage
    validation_data: DataLineage
    tuneserve_version: str
    tuneserve_git_commit: str
    seed: int
    device: str
    world_size: int
    search: _struct_pb2.Struct
    def __init__(self, base_model: _Optional[_Union[BaseModelLineage, _Mapping]] = ..., training_data: _Optional[_Union[DataLineage, _Mapping]] = ..., validation_data: _Optional[_Union[DataLineage, _Mapping]] = ..., tuneserve_version: _Optional[str] = ..., tuneserve_git_commit: _Optional[str] = ..., seed: _Optional[int] = ..., device: _Optional[str] = ..., world_size: _Optional[int] = ..., search: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class BaseModelLineage(_message.Message):
    __slots__ = ("name", "revision", "source", "package", "package_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    revision: str
    source: str
    package: str
    package_version: str
    def __init__(self, name: _Optional[str] = ..., revision: _Optional[str] = ..., source: _Optional[str] = ..., package: _Optional[str] = ..., package_version: _Optional[str] = ...) -> None: ...

class DataLineage(_message.Message):
    __slots__ = ("sha256", "rows")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    rows: int
    def __init__(self, sha256: _Optional[str] = ..., rows: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class SetServingVersionRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class SetServingVersionResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class DeleteModelVersionRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DeleteModelVersionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
