from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AggregationStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_STRATEGY_UNSPECIFIED: _ClassVar[AggregationStrategy]
    AGGREGATION_STRATEGY_SIMPLE: _ClassVar[AggregationStrategy]
    AGGREGATION_STRATEGY_FIRST: _ClassVar[AggregationStrategy]
    AGGREGATION_STRATEGY_AVERAGE: _ClassVar[AggregationStrategy]
    AGGREGATION_STRATEGY_MAX: _ClassVar[AggregationStrategy]
AGGREGATION_STRATEGY_UNSPECIFIED: AggregationStrategy
AGGREGATION_STRATEGY_SIMPLE: AggregationStrategy
AGGREGATION_STRATEGY_FIRST: AggregationStrategy
AGGREGATION_STRATEGY_AVERAGE: AggregationStrategy
AGGREGATION_STRATEGY_MAX: AggregationStrategy

class ClassifyRequest(_message.Message):
    __slots__ = ("model", "version", "texts", "top_k")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    texts: _containers.RepeatedScalarFieldContainer[str]
    top_k: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., texts: _Optional[_Iterable[str]] = ..., top_k: _Optional[int] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("model", "version", "results")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    results: _containers.RepeatedCompositeFieldContainer[ClassificationResult]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., results: _Optional[_Iterable[_Union[ClassificationResult, _Mapping]]] = ...) -> None: ...

class ClassificationResult(_message.Message):
    __slots__ = ("labels", "truncated")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedCompositeFieldContainer[LabelScore]
    truncated: bool
    def __init__(self, labels: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class LabelScore(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ExtractEntitiesRequest(_message.Message):
    __slots__ = ("model", "version", "texts", "aggregation", "min_score")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    texts: _containers.RepeatedScalarFieldContainer[str]
    aggregation: AggregationStrategy
    min_score: float
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., texts: _Optional[_Iterable[str]] = ..., aggregation: _Optional[_Union[AggregationStrategy, str]] = ..., min_score: _Optional[float] = ...) -> None: ...

class ExtractEntitiesResponse(_message.Message):
    __slots__ = ("model", "version", "results")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    results: _containers.RepeatedCompositeFieldContainer[EntityResult]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., results: _Optional[_Iterable[_Union[EntityResult, _Mapping]]] = ...) -> None: ...

class EntityResult(_message.Message):
    __slots__ = ("entities", "truncated")
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    truncated: bool
    def __init__(self, entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("label", "text", "start", "end", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    text: str
    start: int
    end: int
    score: float
    def __init__(self, label: _Optional[str] = ..., text: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...
