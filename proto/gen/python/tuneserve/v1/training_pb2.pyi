import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tuneserve.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportTo(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_TO_UNSPECIFIED: _ClassVar[ReportTo]
    REPORT_TO_NONE: _ClassVar[ReportTo]
    REPORT_TO_MLFLOW: _ClassVar[ReportTo]
    REPORT_TO_TENSORBOARD: _ClassVar[ReportTo]

class TrialState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIAL_STATE_UNSPECIFIED: _ClassVar[TrialState]
    TRIAL_STATE_RUNNING: _ClassVar[TrialState]
    TRIAL_STATE_COMPLETE: _ClassVar[TrialState]
    TRIAL_STATE_PRUNED: _ClassVar[TrialState]
    TRIAL_STATE_FAILED: _ClassVar[TrialState]

class PromotionPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROMOTION_POLICY_UNSPECIFIED: _ClassVar[PromotionPolicy]
    PROMOTION_POLICY_PROMOTE_IF_BETTER: _ClassVar[PromotionPolicy]
    PROMOTION_POLICY_REGISTER_ONLY: _ClassVar[PromotionPolicy]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class TrainingStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_STAGE_UNSPECIFIED: _ClassVar[TrainingStage]
    TRAINING_STAGE_QUEUED: _ClassVar[TrainingStage]
    TRAINING_STAGE_TRAINING: _ClassVar[TrainingStage]
    TRAINING_STAGE_EVALUATING: _ClassVar[TrainingStage]
    TRAINING_STAGE_EXPORTING: _ClassVar[TrainingStage]
    TRAINING_STAGE_QUANTIZING: _ClassVar[TrainingStage]
    TRAINING_STAGE_VALIDATING: _ClassVar[TrainingStage]
    TRAINING_STAGE_GATING: _ClassVar[TrainingStage]
    TRAINING_STAGE_PROMOTING: _ClassVar[TrainingStage]
REPORT_TO_UNSPECIFIED: ReportTo
REPORT_TO_NONE: ReportTo
REPORT_TO_MLFLOW: ReportTo
REPORT_TO_TENSORBOARD: ReportTo
TRIAL_STATE_UNSPECIFIED: TrialState
TRIAL_STATE_RUNNING: TrialState
TRIAL_STATE_COMPLETE: TrialState
TRIAL_STATE_PRUNED: TrialState
TRIAL_STATE_FAILED: TrialState
PROMOTION_POLICY_UNSPECIFIED: PromotionPolicy
PROMOTION_POLICY_PROMOTE_IF_BETTER: PromotionPolicy
PROMOTION_POLICY_REGISTER_ONLY: PromotionPolicy
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
TRAINING_STAGE_UNSPECIFIED: TrainingStage
TRAINING_STAGE_QUEUED: TrainingStage
TRAINING_STAGE_TRAINING: TrainingStage
TRAINING_STAGE_EVALUATING: TrainingStage
TRAINING_STAGE_EXPORTING: TrainingStage
TRAINING_STAGE_QUANTIZING: TrainingStage
TRAINING_STAGE_VALIDATING: TrainingStage
TRAINING_STAGE_GATING: TrainingStage
TRAINING_STAGE_PROMOTING: TrainingStage

class TrainRequest(_message.Message):
    __slots__ = ("model", "task", "base_model", "training_data", "validation_data", "hyperparameters", "quantization", "promotion_policy", "promotion_tolerance", "minimum_metric", "multi_label", "text_column", "label_column", "replace_labels", "nproc_per_node", "nnodes", "gpus_per_node", "search", "report_to")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    TRAINING_DATA_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DATA_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_POLICY_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_METRIC_FIELD_NUMBER: _ClassVar[int]
    MULTI_LABEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    REPLACE_LABELS_FIELD_NUMBER: _ClassVar[int]
    NPROC_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    NNODES_FIELD_NUMBER: _ClassVar[int]
    GPUS_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    REPORT_TO_FIELD_NUMBER: _ClassVar[int]
    model: str
    task: _common_pb2.Task
    base_model: str
    training_data: Dataset
    validation_data: Dataset
    hyperparameters: Hyperparameters
    quantization: _common_pb2.Quantization
    promotion_policy: PromotionPolicy
    promotion_tolerance: float
    minimum_metric: float
    multi_label: bool
    text_column: str
    label_column: str
    replace_labels: bool
    nproc_per_node: int
    nnodes: int
    gpus_per_node: int
    search: Search
    report_to: ReportTo
    def __init__(self, model: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.Task, str]] = ..., base_model: _Optional[str] = ..., training_data: _Optional[_Union[Dataset, _Mapping]] = ..., validation_data: _Optional[_Union[Dataset, _Mapping]] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., quantization: _Optional[_Union[_common_pb2.Quantization, str]] = ..., promotion_policy: _Optional[_Union[PromotionPolicy, str]] = ..., promotion_tolerance: _Optional[float] = ..., minimum_metric: _Optional[float] = ..., multi_label: _Optional[bool] = ..., text_column: _Optional[str] = ..., label_column: _Optional[str] = ..., replace_labels: _Optional[bool] = ..., nproc_per_node: _Optional[int] = ..., nnodes: _Optional[int] = ..., gpus_per_node: _Optional[int] = ..., search: _Optional[_Union[Search, _Mapping]] = ..., report_to: _Optional[_Union[ReportTo, str]] = ...) -> None: ...

class Search(_message.Message):
    __slots__ = ("trials", "space", "timeout_seconds", "prune", "keep_best_on_cancel")
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PRUNE_FIELD_NUMBER: _ClassVar[int]
    KEEP_BEST_ON_CANCEL_FIELD_NUMBER: _ClassVar[int]
    trials: int
    space: _containers.RepeatedCompositeFieldContainer[SearchDimension]
    timeout_seconds: float
    prune: bool
    keep_best_on_cancel: bool
    def __init__(self, trials: _Optional[int] = ..., space: _Optional[_Iterable[_Union[SearchDimension, _Mapping]]] = ..., timeout_seconds: _Optional[float] = ..., prune: _Optional[bool] = ..., keep_best_on_cancel: _Optional[bool] = ...) -> None: ...

class SearchDimension(_message.Message):
    __slots__ = ("name", "low", "high", "log", "choices")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    name: str
    low: float
    high: float
    log: bool
    choices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., log: _Optional[bool] = ..., choices: _Optional[_Iterable[str]] = ...) -> None: ...

class Trial(_message.Message):
    __slots__ = ("number", "state", "hyperparameters", "value", "metrics", "epochs", "seconds", "error")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    number: int
    state: TrialState
    hyperparameters: Hyperparameters
    value: float
    metrics: _containers.ScalarMap[str, float]
    epochs: int
    seconds: float
    error: str
    def __init__(self, number: _Optional[int] = ..., state: _Optional[_Union[TrialState, str]] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., value: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., epochs: _Optional[int] = ..., seconds: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class TrainResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("classification_examples", "token_examples", "uri")
    CLASSIFICATION_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    classification_examples: ClassificationExamples
    token_examples: TokenExamples
    uri: str
    def __init__(self, classification_examples: _Optional[_Union[ClassificationExamples, _Mapping]] = ..., token_examples: _Optional[_Union[TokenExamples, _Mapping]] = ..., uri: _Optional[str] = ...) -> None: ...

class ClassificationExamples(_message.Message):
    __slots__ = ("examples",)
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    examples: _containers.RepeatedCompositeFieldContainer[ClassificationExample]
    def __init__(self, examples: _Optional[_Iterable[_Union[ClassificationExample, _Mapping]]] = ...) -> None: ...

class ClassificationExample(_message.Message):
    __slots__ = ("text", "labels")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    text: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class TokenExamples(_message.Message):
    __slots__ = ("examples",)
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    examples: _containers.RepeatedCompositeFieldContainer[TokenExample]
    def __init__(self, examples: _Optional[_Iterable[_Union[TokenExample, _Mapping]]] = ...) -> None: ...

class TokenExample(_message.Message):
    __slots__ = ("tokens", "tags")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tokens: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class Hyperparameters(_message.Message):
    __slots__ = ("epochs", "learning_rate", "batch_size", "max_length", "seed", "weight_decay", "warmup_ratio", "gradient_accumulation_steps", "early_stopping_patience", "freeze")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    WARMUP_RATIO_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_ACCUMULATION_STEPS_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_PATIENCE_FIELD_NUMBER: _ClassVar[int]
    FREEZE_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    learning_rate: float
    batch_size: int
    max_length: int
    seed: int
    weight_decay: float
    warmup_ratio: float
    gradient_accumulation_steps: int
    early_stopping_patience: int
    freeze: str
    def __init__(self, epochs: _Optional[int] = ..., learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., max_length: _Optional[int] = ..., seed: _Optional[int] = ..., weight_decay: _Optional[float] = ..., warmup_ratio: _Optional[float] = ..., gradient_accumulation_steps: _Optional[int] = ..., early_stopping_patience: _Optional[int] = ..., freeze: _Optional[str] = ...) -> None: ...

class TrainingProgress(_message.Message):
    __slots__ = ("step", "total_steps", "epoch", "loss")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    step: int
    total_steps: int
    epoch: float
    loss: float
    def __init__(self, step: _Optional[int] = ..., total_steps: _Optional[int] = ..., epoch: _Optional[float] = ..., loss: _Optional[float] = ...) -> None: ...

class TrainingJob(_message.Message):
    __slots__ = ("id", "model", "task", "base_model", "version", "state", "stage", "created_at", "started_at", "finished_at", "progress", "primary_metric", "new_metrics", "baseline_metrics", "baseline_version", "promoted", "promotion_reason", "error", "epoch_metrics", "best_epoch", "message", "trials", "best_trial")
    class NewMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class BaselineMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_METRIC_FIELD_NUMBER: _ClassVar[int]
    NEW_METRICS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_METRICS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EPOCH_METRICS_FIELD_NUMBER: _ClassVar[int]
    BEST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    BEST_TRIAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    model: str
    task: _common_pb2.Task
    base_model: str
    version: int
    state: JobState
    stage: TrainingStage
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    progress: TrainingProgress
    primary_metric: str
    new_metrics: _containers.ScalarMap[str, float]
    baseline_metrics: _containers.ScalarMap[str, float]
    baseline_version: int
    promoted: bool
    promotion_reason: str
    error: str
    epoch_metrics: _containers.RepeatedCompositeFieldContainer[EpochMetrics]
    best_epoch: int
    message: str
    trials: _containers.RepeatedCompositeFieldContainer[Trial]
    best_trial: int
    def __init__(self, id: _Optional[str] = ..., model: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.Task, str]] = ..., base_model: _Optional[str] = ..., version: _Optional[int] = ..., state: _Optional[_Union[JobState, str]] = ..., stage: _Optional[_Union[TrainingStage, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., progress: _Optional[_Union[TrainingProgress, _Mapping]] = ..., primary_metric: _Optional[str] = ..., new_metrics: _Optional[_Mapping[str, float]] = ..., baseline_metrics: _Optional[_Mapping[str, float]] = ..., baseline_version: _Optional[int] = ..., promoted: _Optional[bool] = ..., promotion_reason: _Optional[str] = ..., error: _Optional[str] = ..., epoch_metrics: _Optional[_Iterable[_Union[EpochMetrics, _Mapping]]] = ..., best_epoch: _Optional[int] = ..., message: _Optional[str] = ..., trials: _Optional[_Iterable[_Union[Trial, _Mapping]]] = ..., best_trial: _Optional[int] = ...) -> None: ...

class EpochMetrics(_message.Message):
    __slots__ = ("epoch", "step", "train_loss", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    step: int
    train_loss: float
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, epoch: _Optional[int] = ..., step: _Optional[int] = ..., train_loss: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class GetTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class ListTrainingJobsRequest(_message.Message):
    __slots__ = ("model", "state", "page_size", "page_token")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model: str
    state: JobState
    page_size: int
    page_token: str
    def __init__(self, model: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTrainingJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[TrainingJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[TrainingJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class WatchTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchTrainingJobResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: TrainingEvent
    def __init__(self, event: _Optional[_Union[TrainingEvent, _Mapping]] = ...) -> None: ...

class TrainingEvent(_message.Message):
    __slots__ = ("job_id", "state", "stage", "progress", "metrics", "message", "time", "trial")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    stage: TrainingStage
    progress: TrainingProgress
    metrics: _containers.ScalarMap[str, float]
    message: str
    time: _timestamp_pb2.Timestamp
    trial: Trial
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., stage: _Optional[_Union[TrainingStage, str]] = ..., progress: _Optional[_Union[TrainingProgress, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., message: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trial: _Optional[_Union[Trial, _Mapping]] = ...) -> None: ...
