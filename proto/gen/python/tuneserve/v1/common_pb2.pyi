from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_CLASSIFICATION: _ClassVar[Task]
    TASK_TOKEN_CLASSIFICATION: _ClassVar[Task]

class Quantization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUANTIZATION_UNSPECIFIED: _ClassVar[Quantization]
    QUANTIZATION_INT8_DYNAMIC: _ClassVar[Quantization]
    QUANTIZATION_INT8_STATIC: _ClassVar[Quantization]
    QUANTIZATION_FP16: _ClassVar[Quantization]
    QUANTIZATION_NONE: _ClassVar[Quantization]
TASK_UNSPECIFIED: Task
TASK_CLASSIFICATION: Task
TASK_TOKEN_CLASSIFICATION: Task
QUANTIZATION_UNSPECIFIED: Quantization
QUANTIZATION_INT8_DYNAMIC: Quantization
QUANTIZATION_INT8_STATIC: Quantization
QUANTIZATION_FP16: Quantization
QUANTIZATION_NONE: Quantization
