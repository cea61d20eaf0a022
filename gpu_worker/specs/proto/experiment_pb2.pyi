from gpu_worker.specs.proto import dataset_export_config_pb2 as _dataset_export_config_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataSource(_message.Message):
    __slots__ = ("tfrecords_path", "image_directory_path", "source_weight")
    TFRECORDS_PATH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DIRECTORY_PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    tfrecords_path: str
    image_directory_path: str
    source_weight: float
    def __init__(self, tfrecords_path: _Optional[str] = ..., image_directory_path: _Optional[str] = ..., source_weight: _Optional[float] = ...) -> None: ...

class DatasetConfig(_message.Message):
    __slots__ = ("data_sources", "image_extension", "target_class_mapping", "validation_fold", "validation_data_source", "dataloader_mode", "sampling_mode")
    class DATALOADER_MODE(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MULTISOURCE: _ClassVar[DatasetConfig.DATALOADER_MODE]
        LEGACY: _ClassVar[DatasetConfig.DATALOADER_MODE]
        DEFAULT: _ClassVar[DatasetConfig.DATALOADER_MODE]
    MULTISOURCE: DatasetConfig.DATALOADER_MODE
    LEGACY: DatasetConfig.DATALOADER_MODE
    DEFAULT: DatasetConfig.DATALOADER_MODE
    class SAMPLING_MODE(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        USER_DEFINED: _ClassVar[DatasetConfig.SAMPLING_MODE]
        PROPORTIONAL: _ClassVar[DatasetConfig.SAMPLING_MODE]
        UNIFORM: _ClassVar[DatasetConfig.SAMPLING_MODE]
    USER_DEFINED: DatasetConfig.SAMPLING_MODE
    PROPORTIONAL: DatasetConfig.SAMPLING_MODE
    UNIFORM: DatasetConfig.SAMPLING_MODE
    class TargetClassMappingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DATA_SOURCES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_EXTENSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_CLASS_MAPPING_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FOLD_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DATA_SOURCE_FIELD_NUMBER: _ClassVar[int]
    DATALOADER_MODE_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_MODE_FIELD_NUMBER: _ClassVar[int]
    data_sources: _containers.RepeatedCompositeFieldContainer[DataSource]
    image_extension: str
    target_class_mapping: _containers.ScalarMap[str, str]
    validation_fold: int
    validation_data_source: DataSource
    dataloader_mode: DatasetConfig.DATALOADER_MODE
    sampling_mode: DatasetConfig.SAMPLING_MODE
    def __init__(self, data_sources: _Optional[_Iterable[_Union[DataSource, _Mapping]]] = ..., image_extension: _Optional[str] = ..., target_class_mapping: _Optional[_Mapping[str, str]] = ..., validation_fold: _Optional[int] = ..., validation_data_source: _Optional[_Union[DataSource, _Mapping]] = ..., dataloader_mode: _Optional[_Union[DatasetConfig.DATALOADER_MODE, str]] = ..., sampling_mode: _Optional[_Union[DatasetConfig.SAMPLING_MODE, str]] = ...) -> None: ...

class AugmentationConfig(_message.Message):
    __slots__ = ("preprocessing", "spatial_augmentation", "color_augmentation")
    class Preprocessing(_message.Message):
        __slots__ = ("output_image_width", "output_image_height", "output_image_min", "output_image_max", "enable_auto_resize", "output_image_channel", "crop_left", "crop_top", "crop_right", "crop_bottom", "min_bbox_width", "min_bbox_height", "scale_width", "scale_height")
        OUTPUT_IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
        OUTPUT_IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
        OUTPUT_IMAGE_MIN_FIELD_NUMBER: _ClassVar[int]
        OUTPUT_IMAGE_MAX_FIELD_NUMBER: _ClassVar[int]
        ENABLE_AUTO_RESIZE_FIELD_NUMBER: _ClassVar[int]
        OUTPUT_IMAGE_CHANNEL_FIELD_NUMBER: _ClassVar[int]
        CROP_LEFT_FIELD_NUMBER: _ClassVar[int]
        CROP_TOP_FIELD_NUMBER: _ClassVar[int]
        CROP_RIGHT_FIELD_NUMBER: _ClassVar[int]
        CROP_BOTTOM_FIELD_NUMBER: _ClassVar[int]
        MIN_BBOX_WIDTH_FIELD_NUMBER: _ClassVar[int]
        MIN_BBOX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
        SCALE_WIDTH_FIELD_NUMBER: _ClassVar[int]
        SCALE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
        output_image_width: int
        output_image_height: int
        output_image_min: int
        output_image_max: int
        enable_auto_resize: bool
        output_image_channel: int
        crop_left: int
        crop_top: int
        crop_right: int
        crop_bottom: int
        min_bbox_width: float
        min_bbox_height: float
        scale_width: float
        scale_height: float
        def __init__(self, output_image_width: _Optional[int] = ..., output_image_height: _Optional[int] = ..., output_image_min: _Optional[int] = ..., output_image_max: _Optional[int] = ..., enable_auto_resize: bool = ..., output_image_channel: _Optional[int] = ..., crop_left: _Optional[int] = ..., crop_top: _Optional[int] = ..., crop_right: _Optional[int] = ..., crop_bottom: _Optional[int] = ..., min_bbox_width: _Optional[float] = ..., min_bbox_height: _Optional[float] = ..., scale_width: _Optional[float] = ..., scale_height: _Optional[float] = ...) -> None: ...
    class SpatialAugmentation(_message.Message):
        __slots__ = ("hflip_probability", "vflip_probability", "zoom_min", "zoom_max", "translate_max_x", "translate_max_y", "rotate_rad_max", "rotate_probability")
        HFLIP_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
        VFLIP_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
        ZOOM_MIN_FIELD_NUMBER: _ClassVar[int]
        ZOOM_MAX_FIELD_NUMBER: _ClassVar[int]
        TRANSLATE_MAX_X_FIELD_NUMBER: _ClassVar[int]
        TRANSLATE_MAX_Y_FIELD_NUMBER: _ClassVar[int]
        ROTATE_RAD_MAX_FIELD_NUMBER: _ClassVar[int]
        ROTATE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
        hflip_probability: float
        vflip_probability: float
        zoom_min: float
        zoom_max: float
        translate_max_x: float
        translate_max_y: float
        rotate_rad_max: float
        rotate_probability: float
        def __init__(self, hflip_probability: _Optional[float] = ..., vflip_probability: _Optional[float] = ..., zoom_min: _Optional[float] = ..., zoom_max: _Optional[float] = ..., translate_max_x: _Optional[float] = ..., translate_max_y: _Optional[float] = ..., rotate_rad_max: _Optional[float] = ..., rotate_probability: _Optional[float] = ...) -> None: ...
    class ColorAugmentation(_message.Message):
        __slots__ = ("color_shift_stddev", "hue_rotation_max", "saturation_shift_max", "contrast_scale_max", "contrast_center")
        COLOR_SHIFT_STDDEV_FIELD_NUMBER: _ClassVar[int]
        HUE_ROTATION_MAX_FIELD_NUMBER: _ClassVar[int]
        SATURATION_SHIFT_MAX_FIELD_NUMBER: _ClassVar[int]
        CONTRAST_SCALE_MAX_FIELD_NUMBER: _ClassVar[int]
        CONTRAST_CENTER_FIELD_NUMBER: _ClassVar[int]
        color_shift_stddev: float
        hue_rotation_max: float
        saturation_shift_max: float
        contrast_scale_max: float
        contrast_center: float
        def __init__(self, color_shift_stddev: _Optional[float] = ..., hue_rotation_max: _Optional[float] = ..., saturation_shift_max: _Optional[float] = ..., contrast_scale_max: _Optional[float] = ..., contrast_center: _Optional[float] = ...) -> None: ...
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    SPATIAL_AUGMENTATION_FIELD_NUMBER: _ClassVar[int]
    COLOR_AUGMENTATION_FIELD_NUMBER: _ClassVar[int]
    preprocessing: AugmentationConfig.Preprocessing
    spatial_augmentation: AugmentationConfig.SpatialAugmentation
    color_augmentation: AugmentationConfig.ColorAugmentation
    def __init__(self, preprocessing: _Optional[_Union[AugmentationConfig.Preprocessing, _Mapping]] = ..., spatial_augmentation: _Optional[_Union[AugmentationConfig.SpatialAugmentation, _Mapping]] = ..., color_augmentation: _Optional[_Union[AugmentationConfig.ColorAugmentation, _Mapping]] = ...) -> None: ...

class ClusteringConfig(_message.Message):
    __slots__ = ("coverage_threshold", "minimum_bounding_box_height", "clustering_algorithm", "dbscan_eps", "dbscan_min_samples", "neighborhood_size", "dbscan_confidence_threshold", "nms_iou_threshold", "nms_confidence_threshold")
    class ClusteringAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DBSCAN: _ClassVar[ClusteringConfig.ClusteringAlgorithm]
        NMS: _ClassVar[ClusteringConfig.ClusteringAlgorithm]
        HYBRID: _ClassVar[ClusteringConfig.ClusteringAlgorithm]
    DBSCAN: ClusteringConfig.ClusteringAlgorithm
    NMS: ClusteringConfig.ClusteringAlgorithm
    HYBRID: ClusteringConfig.ClusteringAlgorithm
    COVERAGE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_BOUNDING_BOX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CLUSTERING_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    DBSCAN_EPS_FIELD_NUMBER: _ClassVar[int]
    DBSCAN_MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NEIGHBORHOOD_SIZE_FIELD_NUMBER: _ClassVar[int]
    DBSCAN_CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    NMS_IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    NMS_CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    coverage_threshold: float
    minimum_bounding_box_height: int
    clustering_algorithm: ClusteringConfig.ClusteringAlgorithm
    dbscan_eps: float
    dbscan_min_samples: int
    neighborhood_size: int
    dbscan_confidence_threshold: float
    nms_iou_threshold: float
    nms_confidence_threshold: float
    def __init__(self, coverage_threshold: _Optional[float] = ..., minimum_bounding_box_height: _Optional[int] = ..., clustering_algorithm: _Optional[_Union[ClusteringConfig.ClusteringAlgorithm, str]] = ..., dbscan_eps: _Optional[float] = ..., dbscan_min_samples: _Optional[int] = ..., neighborhood_size: _Optional[int] = ..., dbscan_confidence_threshold: _Optional[float] = ..., nms_iou_threshold: _Optional[float] = ..., nms_confidence_threshold: _Optional[float] = ...) -> None: ...

class ConfidenceConfig(_message.Message):
    __slots__ = ("confidence_threshold", "confidence_model_filename", "normalization_mode")
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_MODEL_FILENAME_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_MODE_FIELD_NUMBER: _ClassVar[int]
    confidence_threshold: float
    confidence_model_filename: str
    normalization_mode: str
    def __init__(self, confidence_threshold: _Optional[float] = ..., confidence_model_filename: _Optional[str] = ..., normalization_mode: _Optional[str] = ...) -> None: ...

class PostProcessingConfig(_message.Message):
    __slots__ = ("target_class_config",)
    class TargetClassConfig(_message.Message):
        __slots__ = ("clustering_config", "confidence_config")
        CLUSTERING_CONFIG_FIELD_NUMBER: _ClassVar[int]
        CONFIDENCE_CONFIG_FIELD_NUMBER: _ClassVar[int]
        clustering_config: ClusteringConfig
        confidence_config: ConfidenceConfig
        def __init__(self, clustering_config: _Optional[_Union[ClusteringConfig, _Mapping]] = ..., confidence_config: _Optional[_Union[ConfidenceConfig, _Mapping]] = ...) -> None: ...
    class TargetClassConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: PostProcessingConfig.TargetClassConfig
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[PostProcessingConfig.TargetClassConfig, _Mapping]] = ...) -> None: ...
    TARGET_CLASS_CONFIG_FIELD_NUMBER: _ClassVar[int]
    target_class_config: _containers.MessageMap[str, PostProcessingConfig.TargetClassConfig]
    def __init__(self, target_class_config: _Optional[_Mapping[str, PostProcessingConfig.TargetClassConfig]] = ...) -> None: ...

class ModelConfig(_message.Message):
    __slots__ = ("pretrained_model_file", "freeze_pretrained_layers", "allow_loaded_model_modification", "num_layers", "use_pooling", "use_batch_norm", "dropout_rate", "activation", "objective_set", "training_precision", "freeze_bn", "freeze_blocks", "arch", "load_graph", "all_projections")
    class Activation(_message.Message):
        __slots__ = ("activation_type", "activation_parameters")
        class ActivationParametersEntry(_message.Message):
            __slots__ = ("key", "value")
            KEY_FIELD_NUMBER: _ClassVar[int]
            VALUE_FIELD_NUMBER: _ClassVar[int]
            key: str
            value: float
            def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
        ACTIVATION_TYPE_FIELD_NUMBER: _ClassVar[int]
        ACTIVATION_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
        activation_type: str
        activation_parameters: _containers.ScalarMap[str, float]
        def __init__(self, activation_type: _Optional[str] = ..., activation_parameters: _Optional[_Mapping[str, float]] = ...) -> None: ...
    class BboxObjective(_message.Message):
        __slots__ = ("input", "scale", "offset")
        INPUT_FIELD_NUMBER: _ClassVar[int]
        SCALE_FIELD_NUMBER: _ClassVar[int]
        OFFSET_FIELD_NUMBER: _ClassVar[int]
        input: str
        scale: float
        offset: float
        def __init__(self, input: _Optional[str] = ..., scale: _Optional[float] = ..., offset: _Optional[float] = ...) -> None: ...
    class CovObjective(_message.Message):
        __slots__ = ("input",)
        INPUT_FIELD_NUMBER: _ClassVar[int]
        input: str
        def __init__(self, input: _Optional[str] = ...) -> None: ...
    class ObjectiveSet(_message.Message):
        __slots__ = ("bbox", "cov")
        BBOX_FIELD_NUMBER: _ClassVar[int]
        COV_FIELD_NUMBER: _ClassVar[int]
        bbox: ModelConfig.BboxObjective
        cov: ModelConfig.CovObjective
        def __init__(self, bbox: _Optional[_Union[ModelConfig.BboxObjective, _Mapping]] = ..., cov: _Optional[_Union[ModelConfig.CovObjective, _Mapping]] = ...) -> None: ...
    class TrainingPrecision(_message.Message):
        __slots__ = ("backend_floatx",)
        class BackendFloatx(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            FLOAT32: _ClassVar[ModelConfig.TrainingPrecision.BackendFloatx]
            FLOAT16: _ClassVar[ModelConfig.TrainingPrecision.BackendFloatx]
            INVALID: _ClassVar[ModelConfig.TrainingPrecision.BackendFloatx]
        FLOAT32: ModelConfig.TrainingPrecision.BackendFloatx
        FLOAT16: ModelConfig.TrainingPrecision.BackendFloatx
        INVALID: ModelConfig.TrainingPrecision.BackendFloatx
        BACKEND_FLOATX_FIELD_NUMBER: _ClassVar[int]
        backend_floatx: ModelConfig.TrainingPrecision.BackendFloatx
        def __init__(self, backend_floatx: _Optional[_Union[ModelConfig.TrainingPrecision.BackendFloatx, str]] = ...) -> None: ...
    PRETRAINED_MODEL_FILE_FIELD_NUMBER: _ClassVar[int]
    FREEZE_PRETRAINED_LAYERS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_LOADED_MODEL_MODIFICATION_FIELD_NUMBER: _ClassVar[int]
    NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    USE_POOLING_FIELD_NUMBER: _ClassVar[int]
    USE_BATCH_NORM_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_RATE_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_SET_FIELD_NUMBER: _ClassVar[int]
    TRAINING_PRECISION_FIELD_NUMBER: _ClassVar[int]
    FREEZE_BN_FIELD_NUMBER: _ClassVar[int]
    FREEZE_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    LOAD_GRAPH_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTIONS_FIELD_NUMBER: _ClassVar[int]
    pretrained_model_file: str
    freeze_pretrained_layers: bool
    allow_loaded_model_modification: bool
    num_layers: int
    use_pooling: bool
    use_batch_norm: bool
    dropout_rate: float
    activation: ModelConfig.Activation
    objective_set: ModelConfig.ObjectiveSet
    training_precision: ModelConfig.TrainingPrecision
    freeze_bn: bool
    freeze_blocks: _containers.RepeatedScalarFieldContainer[float]
    arch: str
    load_graph: bool
    all_projections: bool
    def __init__(self, pretrained_model_file: _Optional[str] = ..., freeze_pretrained_layers: bool = ..., allow_loaded_model_modification: bool = ..., num_layers: _Optional[int] = ..., use_pooling: bool = ..., use_batch_norm: bool = ..., dropout_rate: _Optional[float] = ..., activation: _Optional[_Union[ModelConfig.Activation, _Mapping]] = ..., objective_set: _Optional[_Union[ModelConfig.ObjectiveSet, _Mapping]] = ..., training_precision: _Optional[_Union[ModelConfig.TrainingPrecision, _Mapping]] = ..., freeze_bn: bool = ..., freeze_blocks: _Optional[_Iterable[float]] = ..., arch: _Optional[str] = ..., load_graph: bool = ..., all_projections: bool = ...) -> None: ...

class EvaluationConfig(_message.Message):
    __slots__ = ("validation_period_during_training", "first_validation_epoch", "early_stopping_patience_steps", "minimum_detection_ground_truth_overlap", "evaluation_box_config", "average_precision_mode")
    class AP_MODE(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SAMPLE: _ClassVar[EvaluationConfig.AP_MODE]
        INTEGRATE: _ClassVar[EvaluationConfig.AP_MODE]
    SAMPLE: EvaluationConfig.AP_MODE
    INTEGRATE: EvaluationConfig.AP_MODE
    class MinimumDetectionGroundTruthOverlapEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class EvaluationBoxConfig(_message.Message):
        __slots__ = ("minimum_height", "maximum_height", "minimum_width", "maximum_width")
        MINIMUM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
        MAXIMUM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
        MINIMUM_WIDTH_FIELD_NUMBER: _ClassVar[int]
        MAXIMUM_WIDTH_FIELD_NUMBER: _ClassVar[int]
        minimum_height: int
        maximum_height: int
        minimum_width: int
        maximum_width: int
        def __init__(self, minimum_height: _Optional[int] = ..., maximum_height: _Optional[int] = ..., minimum_width: _Optional[int] = ..., maximum_width: _Optional[int] = ...) -> None: ...
    class EvaluationBoxConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: EvaluationConfig.EvaluationBoxConfig
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[EvaluationConfig.EvaluationBoxConfig, _Mapping]] = ...) -> None: ...
    VALIDATION_PERIOD_DURING_TRAINING_FIELD_NUMBER: _ClassVar[int]
    FIRST_VALIDATION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_PATIENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_DETECTION_GROUND_TRUTH_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_BOX_CONFIG_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRECISION_MODE_FIELD_NUMBER: _ClassVar[int]
    validation_period_during_training: int
    first_validation_epoch: int
    early_stopping_patience_steps: int
    minimum_detection_ground_truth_overlap: _containers.ScalarMap[str, float]
    evaluation_box_config: _containers.MessageMap[str, EvaluationConfig.EvaluationBoxConfig]
    average_precision_mode: EvaluationConfig.AP_MODE
    def __init__(self, validation_period_during_training: _Optional[int] = ..., first_validation_epoch: _Optional[int] = ..., early_stopping_patience_steps: _Optional[int] = ..., minimum_detection_ground_truth_overlap: _Optional[_Mapping[str, float]] = ..., evaluation_box_config: _Optional[_Mapping[str, EvaluationConfig.EvaluationBoxConfig]] = ..., average_precision_mode: _Optional[_Union[EvaluationConfig.AP_MODE, str]] = ...) -> None: ...

class CostFunctionConfig(_message.Message):
    __slots__ = ("target_classes", "enable_autoweighting", "max_objective_weight", "min_objective_weight")
    class TargetClass(_message.Message):
        __slots__ = ("name", "class_weight", "coverage_foreground_weight", "objectives")
        class Objective(_message.Message):
            __slots__ = ("name", "initial_weight", "weight_target")
            NAME_FIELD_NUMBER: _ClassVar[int]
            INITIAL_WEIGHT_FIELD_NUMBER: _ClassVar[int]
            WEIGHT_TARGET_FIELD_NUMBER: _ClassVar[int]
            name: str
            initial_weight: float
            weight_target: float
            def __init__(self, name: _Optional[str] = ..., initial_weight: _Optional[float] = ..., weight_target: _Optional[float] = ...) -> None: ...
        NAME_FIELD_NUMBER: _ClassVar[int]
        CLASS_WEIGHT_FIELD_NUMBER: _ClassVar[int]
        COVERAGE_FOREGROUND_WEIGHT_FIELD_NUMBER: _ClassVar[int]
        OBJECTIVES_FIELD_NUMBER: _ClassVar[int]
        name: str
        class_weight: float
        coverage_foreground_weight: float
        objectives: _containers.RepeatedCompositeFieldContainer[CostFunctionConfig.TargetClass.Objective]
        def __init__(self, name: _Optional[str] = ..., class_weight: _Optional[float] = ..., coverage_foreground_weight: _Optional[float] = ..., objectives: _Optional[_Iterable[_Union[CostFunctionConfig.TargetClass.Objective, _Mapping]]] = ...) -> None: ...
    TARGET_CLASSES_FIELD_NUMBER: _ClassVar[int]
    ENABLE_AUTOWEIGHTING_FIELD_NUMBER: _ClassVar[int]
    MAX_OBJECTIVE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    MIN_OBJECTIVE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    target_classes: _containers.RepeatedCompositeFieldContainer[CostFunctionConfig.TargetClass]
    enable_autoweighting: bool
    max_objective_weight: float
    min_objective_weight: float
    def __init__(self, target_classes: _Optional[_Iterable[_Union[CostFunctionConfig.TargetClass, _Mapping]]] = ..., enable_autoweighting: bool = ..., max_objective_weight: _Optional[float] = ..., min_objective_weight: _Optional[float] = ...) -> None: ...

class SoftStartAnnealingScheduleConfig(_message.Message):
    __slots__ = ("min_learning_rate", "max_learning_rate", "soft_start", "annealing")
    MIN_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    SOFT_START_FIELD_NUMBER: _ClassVar[int]
    ANNEALING_FIELD_NUMBER: _ClassVar[int]
    min_learning_rate: float
    max_learning_rate: float
    soft_start: float
    annealing: float
    def __init__(self, min_learning_rate: _Optional[float] = ..., max_learning_rate: _Optional[float] = ..., soft_start: _Optional[float] = ..., annealing: _Optional[float] = ...) -> None: ...

class EarlyStoppingAnnealingScheduleConfig(_message.Message):
    __slots__ = ("min_learning_rate", "max_learning_rate", "soft_start_epochs", "annealing_epochs", "patience_steps")
    MIN_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    SOFT_START_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    ANNEALING_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    PATIENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    min_learning_rate: float
    max_learning_rate: float
    soft_start_epochs: int
    annealing_epochs: int
    patience_steps: int
    def __init__(self, min_learning_rate: _Optional[float] = ..., max_learning_rate: _Optional[float] = ..., soft_start_epochs: _Optional[int] = ..., annealing_epochs: _Optional[int] = ..., patience_steps: _Optional[int] = ...) -> None: ...

class LearningRateConfig(_message.Message):
    __slots__ = ("soft_start_annealing_schedule", "early_stopping_annealing_schedule")
    SOFT_START_ANNEALING_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_ANNEALING_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    soft_start_annealing_schedule: SoftStartAnnealingScheduleConfig
    early_stopping_annealing_schedule: EarlyStoppingAnnealingScheduleConfig
    def __init__(self, soft_start_annealing_schedule: _Optional[_Union[SoftStartAnnealingScheduleConfig, _Mapping]] = ..., early_stopping_annealing_schedule: _Optional[_Union[EarlyStoppingAnnealingScheduleConfig, _Mapping]] = ...) -> None: ...

class RegularizerConfig(_message.Message):
    __slots__ = ("type", "weight")
    class RegularizationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NO_REG: _ClassVar[RegularizerConfig.RegularizationType]
        L1: _ClassVar[RegularizerConfig.RegularizationType]
        L2: _ClassVar[RegularizerConfig.RegularizationType]
    NO_REG: RegularizerConfig.RegularizationType
    L1: RegularizerConfig.RegularizationType
    L2: RegularizerConfig.RegularizationType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    type: RegularizerConfig.RegularizationType
    weight: float
    def __init__(self, type: _Optional[_Union[RegularizerConfig.RegularizationType, str]] = ..., weight: _Optional[float] = ...) -> None: ...

class AdamOptimizerConfig(_message.Message):
    __slots__ = ("epsilon", "beta1", "beta2")
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    epsilon: float
    beta1: float
    beta2: float
    def __init__(self, epsilon: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ...) -> None: ...

class OptimizerConfig(_message.Message):
    __slots__ = ("adam",)
    ADAM_FIELD_NUMBER: _ClassVar[int]
    adam: AdamOptimizerConfig
    def __init__(self, adam: _Optional[_Union[AdamOptimizerConfig, _Mapping]] = ...) -> None: ...

class CostScalingConfig(_message.Message):
    __slots__ = ("enabled", "initial_exponent", "increment", "decrement")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    INITIAL_EXPONENT_FIELD_NUMBER: _ClassVar[int]
    INCREMENT_FIELD_NUMBER: _ClassVar[int]
    DECREMENT_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    initial_exponent: float
    increment: float
    decrement: float
    def __init__(self, enabled: bool = ..., initial_exponent: _Optional[float] = ..., increment: _Optional[float] = ..., decrement: _Optional[float] = ...) -> None: ...

class WandBConfig(_message.Message):
    __slots__ = ("enabled", "key", "project", "entity", "reinit", "name", "tags", "wandb_dir", "notes", "mode")
    class MODE(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ONLINE: _ClassVar[WandBConfig.MODE]
        OFFLINE: _ClassVar[WandBConfig.MODE]
        DISABLED: _ClassVar[WandBConfig.MODE]
    ONLINE: WandBConfig.MODE
    OFFLINE: WandBConfig.MODE
    DISABLED: WandBConfig.MODE
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    REINIT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    WANDB_DIR_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    key: str
    project: str
    entity: str
    reinit: bool
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    wandb_dir: str
    notes: str
    mode: WandBConfig.MODE
    def __init__(self, enabled: bool = ..., key: _Optional[str] = ..., project: _Optional[str] = ..., entity: _Optional[str] = ..., reinit: bool = ..., name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., wandb_dir: _Optional[str] = ..., notes: _Optional[str] = ..., mode: _Optional[_Union[WandBConfig.MODE, str]] = ...) -> None: ...

class ClearMLConfig(_message.Message):
    __slots__ = ("project", "task", "tags", "reuse_last_task_id", "continue_last_task", "deferred_init")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    REUSE_LAST_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CONTINUE_LAST_TASK_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_INIT_FIELD_NUMBER: _ClassVar[int]
    project: str
    task: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    reuse_last_task_id: bool
    continue_last_task: bool
    deferred_init: bool
    def __init__(self, project: _Optional[str] = ..., task: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., reuse_last_task_id: bool = ..., continue_last_task: bool = ..., deferred_init: bool = ...) -> None: ...

class VisualizerConfig(_message.Message):
    __slots__ = ("enabled", "num_images", "scalar_logging_frequency", "infrequent_logging_frequency", "target_class_config", "wandb_config", "clearml_config")
    class TargetClassConfig(_message.Message):
        __slots__ = ("coverage_threshold",)
        COVERAGE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
        coverage_threshold: float
        def __init__(self, coverage_threshold: _Optional[float] = ...) -> None: ...
    class TargetClassConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: VisualizerConfig.TargetClassConfig
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[VisualizerConfig.TargetClassConfig, _Mapping]] = ...) -> None: ...
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    NUM_IMAGES_FIELD_NUMBER: _ClassVar[int]
    SCALAR_LOGGING_FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    INFREQUENT_LOGGING_FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    TARGET_CLASS_CONFIG_FIELD_NUMBER: _ClassVar[int]
    WANDB_CONFIG_FIELD_NUMBER: _ClassVar[int]
    CLEARML_CONFIG_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    num_images: int
    scalar_logging_frequency: int
    infrequent_logging_frequency: int
    target_class_config: _containers.MessageMap[str, VisualizerConfig.TargetClassConfig]
    wandb_config: WandBConfig
    clearml_config: ClearMLConfig
    def __init__(self, enabled: bool = ..., num_images: _Optional[int] = ..., scalar_logging_frequency: _Optional[int] = ..., infrequent_logging_frequency: _Optional[int] = ..., target_class_config: _Optional[_Mapping[str, VisualizerConfig.TargetClassConfig]] = ..., wandb_config: _Optional[_Union[WandBConfig, _Mapping]] = ..., clearml_config: _Optional[_Union[ClearMLConfig, _Mapping]] = ...) -> None: ...

class TrainingConfig(_message.Message):
    __slots__ = ("batch_size_per_gpu", "num_epochs", "learning_rate", "regularizer", "optimizer", "cost_scaling", "checkpoint_interval", "enable_qat", "visualizer")
    BATCH_SIZE_PER_GPU_FIELD_NUMBER: _ClassVar[int]
    NUM_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    REGULARIZER_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    COST_SCALING_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    ENABLE_QAT_FIELD_NUMBER: _ClassVar[int]
    VISUALIZER_FIELD_NUMBER: _ClassVar[int]
    batch_size_per_gpu: int
    num_epochs: int
    learning_rate: LearningRateConfig
    regularizer: RegularizerConfig
    optimizer: OptimizerConfig
    cost_scaling: CostScalingConfig
    checkpoint_interval: int
    enable_qat: bool
    visualizer: VisualizerConfig
    def __init__(self, batch_size_per_gpu: _Optional[int] = ..., num_epochs: _Optional[int] = ..., learning_rate: _Optional[_Union[LearningRateConfig, _Mapping]] = ..., regularizer: _Optional[_Union[RegularizerConfig, _Mapping]] = ..., optimizer: _Optional[_Union[OptimizerConfig, _Mapping]] = ..., cost_scaling: _Optional[_Union[CostScalingConfig, _Mapping]] = ..., checkpoint_interval: _Optional[int] = ..., enable_qat: bool = ..., visualizer: _Optional[_Union[VisualizerConfig, _Mapping]] = ...) -> None: ...

class BboxRasterizerConfig(_message.Message):
    __slots__ = ("target_class_config", "deadzone_radius")
    class TargetClassConfig(_message.Message):
        __slots__ = ("cov_center_x", "cov_center_y", "cov_radius_x", "cov_radius_y", "bbox_min_radius")
        COV_CENTER_X_FIELD_NUMBER: _ClassVar[int]
        COV_CENTER_Y_FIELD_NUMBER: _ClassVar[int]
        COV_RADIUS_X_FIELD_NUMBER: _ClassVar[int]
        COV_RADIUS_Y_FIELD_NUMBER: _ClassVar[int]
        BBOX_MIN_RADIUS_FIELD_NUMBER: _ClassVar[int]
        cov_center_x: float
        cov_center_y: float
        cov_radius_x: float
        cov_radius_y: float
        bbox_min_radius: float
        def __init__(self, cov_center_x: _Optional[float] = ..., cov_center_y: _Optional[float] = ..., cov_radius_x: _Optional[float] = ..., cov_radius_y: _Optional[float] = ..., bbox_min_radius: _Optional[float] = ...) -> None: ...
    class TargetClassConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: BboxRasterizerConfig.TargetClassConfig
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[BboxRasterizerConfig.TargetClassConfig, _Mapping]] = ...) -> None: ...
    TARGET_CLASS_CONFIG_FIELD_NUMBER: _ClassVar[int]
    DEADZONE_RADIUS_FIELD_NUMBER: _ClassVar[int]
    target_class_config: _containers.MessageMap[str, BboxRasterizerConfig.TargetClassConfig]
    deadzone_radius: float
    def __init__(self, target_class_config: _Optional[_Mapping[str, BboxRasterizerConfig.TargetClassConfig]] = ..., deadzone_radius: _Optional[float] = ...) -> None: ...

class LabelFilter(_message.Message):
    __slots__ = ("bbox_dimensions_label_filter", "bbox_crop_label_filter", "source_class_label_filter")
    class BboxDimensionsLabelFilter(_message.Message):
        __slots__ = ("min_width", "min_height", "max_width", "max_height")
        MIN_WIDTH_FIELD_NUMBER: _ClassVar[int]
        MIN_HEIGHT_FIELD_NUMBER: _ClassVar[int]
        MAX_WIDTH_FIELD_NUMBER: _ClassVar[int]
        MAX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
        min_width: float
        min_height: float
        max_width: float
        max_height: float
        def __init__(self, min_width: _Optional[float] = ..., min_height: _Optional[float] = ..., max_width: _Optional[float] = ..., max_height: _Optional[float] = ...) -> None: ...
    class BboxCropLabelFilter(_message.Message):
        __slots__ = ("crop_left", "crop_right", "crop_top", "crop_bottom")
        CROP_LEFT_FIELD_NUMBER: _ClassVar[int]
        CROP_RIGHT_FIELD_NUMBER: _ClassVar[int]
        CROP_TOP_FIELD_NUMBER: _ClassVar[int]
        CROP_BOTTOM_FIELD_NUMBER: _ClassVar[int]
        crop_left: float
        crop_right: float
        crop_top: float
        crop_bottom: float
        def __init__(self, crop_left: _Optional[float] = ..., crop_right: _Optional[float] = ..., crop_top: _Optional[float] = ..., crop_bottom: _Optional[float] = ...) -> None: ...
    class SourceClassLabelFilter(_message.Message):
        __slots__ = ("source_class_names",)
        SOURCE_CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
        source_class_names: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, source_class_names: _Optional[_Iterable[str]] = ...) -> None: ...
    BBOX_DIMENSIONS_LABEL_FILTER_FIELD_NUMBER: _ClassVar[int]
    BBOX_CROP_LABEL_FILTER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_CLASS_LABEL_FILTER_FIELD_NUMBER: _ClassVar[int]
    bbox_dimensions_label_filter: LabelFilter.BboxDimensionsLabelFilter
    bbox_crop_label_filter: LabelFilter.BboxCropLabelFilter
    source_class_label_filter: LabelFilter.SourceClassLabelFilter
    def __init__(self, bbox_dimensions_label_filter: _Optional[_Union[LabelFilter.BboxDimensionsLabelFilter, _Mapping]] = ..., bbox_crop_label_filter: _Optional[_Union[LabelFilter.BboxCropLabelFilter, _Mapping]] = ..., source_class_label_filter: _Optional[_Union[LabelFilter.SourceClassLabelFilter, _Mapping]] = ...) -> None: ...

class ObjectiveLabelFilter(_message.Message):
    __slots__ = ("objective_label_filter_configs", "mask_multiplier", "preserve_ground_truth")
    class ObjectiveLabelFilterConfig(_message.Message):
        __slots__ = ("label_filter", "target_class_names", "objective_names")
        LABEL_FILTER_FIELD_NUMBER: _ClassVar[int]
        TARGET_CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
        OBJECTIVE_NAMES_FIELD_NUMBER: _ClassVar[int]
        label_filter: LabelFilter
        target_class_names: _containers.RepeatedScalarFieldContainer[str]
        objective_names: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, label_filter: _Optional[_Union[LabelFilter, _Mapping]] = ..., target_class_names: _Optional[_Iterable[str]] = ..., objective_names: _Optional[_Iterable[str]] = ...) -> None: ...
    OBJECTIVE_LABEL_FILTER_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    MASK_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    PRESERVE_GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    objective_label_filter_configs: _containers.RepeatedCompositeFieldContainer[ObjectiveLabelFilter.ObjectiveLabelFilterConfig]
    mask_multiplier: float
    preserve_ground_truth: bool
    def __init__(self, objective_label_filter_configs: _Optional[_Iterable[_Union[ObjectiveLabelFilter.ObjectiveLabelFilterConfig, _Mapping]]] = ..., mask_multiplier: _Optional[float] = ..., preserve_ground_truth: bool = ...) -> None: ...

class Experiment(_message.Message):
    __slots__ = ("random_seed", "dataset_config", "augmentation_config", "postprocessing_config", "model_config", "evaluation_config", "cost_function_config", "training_config", "bbox_rasterizer_config", "loss_mask_label_filter", "dataset_export_config")
    RANDOM_SEED_FIELD_NUMBER: _ClassVar[int]
    DATASET_CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUGMENTATION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESSING_CONFIG_FIELD_NUMBER: _ClassVar[int]
    MODEL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    COST_FUNCTION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    TRAINING_CONFIG_FIELD_NUMBER: _ClassVar[int]
    BBOX_RASTERIZER_CONFIG_FIELD_NUMBER: _ClassVar[int]
    LOSS_MASK_LABEL_FILTER_FIELD_NUMBER: _ClassVar[int]
    DATASET_EXPORT_CONFIG_FIELD_NUMBER: _ClassVar[int]
    random_seed: int
    dataset_config: DatasetConfig
    augmentation_config: AugmentationConfig
    postprocessing_config: PostProcessingConfig
    model_config: ModelConfig
    evaluation_config: EvaluationConfig
    cost_function_config: CostFunctionConfig
    training_config: TrainingConfig
    bbox_rasterizer_config: BboxRasterizerConfig
    loss_mask_label_filter: ObjectiveLabelFilter
    dataset_export_config: _containers.RepeatedCompositeFieldContainer[_dataset_export_config_pb2.DatasetExportConfig]
    def __init__(self, random_seed: _Optional[int] = ..., dataset_config: _Optional[_Union[DatasetConfig, _Mapping]] = ..., augmentation_config: _Optional[_Union[AugmentationConfig, _Mapping]] = ..., postprocessing_config: _Optional[_Union[PostProcessingConfig, _Mapping]] = ..., model_config: _Optional[_Union[ModelConfig, _Mapping]] = ..., evaluation_config: _Optional[_Union[EvaluationConfig, _Mapping]] = ..., cost_function_config: _Optional[_Union[CostFunctionConfig, _Mapping]] = ..., training_config: _Optional[_Union[TrainingConfig, _Mapping]] = ..., bbox_rasterizer_config: _Optional[_Union[BboxRasterizerConfig, _Mapping]] = ..., loss_mask_label_filter: _Optional[_Union[ObjectiveLabelFilter, _Mapping]] = ..., dataset_export_config: _Optional[_Iterable[_Union[_dataset_export_config_pb2.DatasetExportConfig, _Mapping]]] = ...) -> None: ...
