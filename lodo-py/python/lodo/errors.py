"""The exceptions of ``lodo``: one class per error variant of lodo-core (``ConfigError``,
``StepError``, ``StateError``), of the state envelope, and of the binding's array checks.

Every class derives from :class:`LodoError` and from the Python exception that fits
(``ValueError``, ``TypeError`` or ``MemoryError``), so ``except ValueError`` keeps working.
The fields of a variant are attributes of the exception (``e.index``, ``e.expected``, ...).
"""


class LodoError(Exception):
    """Base of every error raised by lodo."""


# -- lodo-core's ConfigError: hyperparameters LODO cannot run with (nothing was created). --
class ConfigError(LodoError, ValueError):
    """A hyperparameter or shape LODO cannot run with (lodo-core ``ConfigError``)."""


class EmptyProblemError(ConfigError):
    """``n = 0``."""


class InvalidAlpha0Error(ConfigError):
    """``alpha0`` is not finite and > 0."""


class InvalidMetaLearningRateError(ConfigError):
    """``meta_lr`` is not finite and > 0."""


class InvalidMomentumError(ConfigError):
    """``beta`` is outside [0, 1)."""


class ZeroLayersError(ConfigError):
    """``layers = 0``."""


class ZeroBlockSizeError(ConfigError):
    """``block_size = 0``."""


class HiddenTooSmallError(ConfigError):
    """``hidden < n`` (attributes ``hidden``, ``dim``)."""


class HiddenNotMultipleOfBlockError(ConfigError):
    """``hidden`` is not a multiple of ``block_size`` (attributes ``hidden``, ``block_size``)."""


class TooLargeError(ConfigError):
    """The network does not fit the u32 permutation indices or usize."""


class InvalidBeta1Error(ConfigError):
    """``adam_beta1`` is outside [0, 1)."""


class InvalidBeta2Error(ConfigError):
    """``adam_beta2`` is outside [0, 1)."""


class InvalidEpsilonError(ConfigError):
    """``adam_epsilon`` is not finite and > 0."""


class InvalidLearningRateError(ConfigError):
    """A first-order learning rate is not finite and > 0."""


class ZeroTileError(ConfigError):
    """``family='tiled_shuffle'`` with ``tile=0``."""


class TileNotMultipleOfBlockError(ConfigError):
    """``tile`` is not a multiple of ``block_size`` (attributes ``tile``, ``block_size``)."""


class HiddenNotAlignedError(ConfigError):
    """``hidden`` is not a multiple the permutation family can stream (``hidden``, ``multiple``)."""


class CompactBlockTooLargeError(ConfigError):
    """Compact moments (bf16, q8) need ``block_size <= max`` (``block_size``, ``max``)."""


class UnsupportedActivationPrecisionError(ConfigError):
    """``activations='q8'``: activations are held in full precision or bf16."""


class UnsupportedWeightPrecisionError(ConfigError):
    """``weights='f32'`` with ``dtype=float32``: the weights are stored in f32 below a float64
    optimizer only (an f32 optimizer already holds them in f32)."""


class OutOfMemoryError(ConfigError, MemoryError):
    """The allocator refused a buffer (attribute ``bytes``); nothing was created."""


class InvalidOptionError(ConfigError):
    """An option the binding does not know (a name, a dtype) or one of another part (e.g.
    ``moments`` with ``meta='sgd'``)."""


class BusyError(LodoError, RuntimeError):
    """The optimizer is in use by another thread (a ``step`` runs with the GIL released, and a
    ``Lodo`` runs one call at a time); nothing changed. Retry, or give each thread its own."""


# -- lodo-core's StepError: a step refused. --
class StepError(LodoError, ValueError):
    """A refused step (lodo-core ``StepError``); the parameters are unchanged."""


class GradientLengthError(StepError):
    """The gradient's length is not ``n`` (``expected``, ``found``); nothing changed."""


class ParamsLengthError(StepError):
    """The parameters' length is not ``n`` (``expected``, ``found``); nothing changed."""


class NonFiniteGradientError(StepError):
    """The gradient has a NaN or inf at ``index``; nothing changed."""


class NonFiniteParamsError(StepError):
    """The parameters hold a NaN or inf at ``index`` (checked by the binding before the step);
    nothing changed."""


class NonFiniteStepError(StepError):
    """The step would make parameter ``index`` non-finite: parameters and momentum unchanged,
    the preconditioner's weights took their (finite) meta-step."""


class NonFiniteMetaUpdateError(StepError):
    """The meta-update of ``kept`` weights would not be finite (huge gradient): they kept their
    values, the others took their meta-step; parameters and momentum unchanged."""


# -- lodo-core's StateError and the state envelope: saved bytes that cannot be restored. --
class StateError(LodoError, ValueError):
    """Saved state bytes that cannot be restored; nothing changed."""


class StateTruncatedError(StateError):
    """The bytes end early."""


class StateCorruptError(StateError):
    """Not a LODO state (magic, hash, payload, trailing bytes), or one of another
    meta-optimizer."""


class StateWrongTypeError(StateError):
    """Saved from the other float type (attribute ``width``: 4 or 8 bytes)."""


class UnsupportedVersionError(StateError):
    """An envelope version or lodo-core state format this build cannot read (``found``)."""


class StateConfigError(StateError):
    """The stored hyperparameters are invalid (``config_error``: the ConfigError)."""


class StateLengthError(StateError):
    """A stored array has the wrong length (``what``, ``expected``, ``found``)."""


class NotAPermutationError(StateError):
    """A stored permutation is not one (``layer``)."""


class NonFiniteStateError(StateError):
    """A stored array holds a NaN or inf (``what``)."""


class NegativeStateError(StateError):
    """A stored array that must be >= 0 holds a negative value (``what``)."""


# -- The binding's array checks (before any work; nothing changed). --
class ArrayError(LodoError):
    """An array argument the binding cannot use in place."""


class DtypeError(ArrayError, TypeError):
    """Not a numpy.ndarray, or not of the optimizer's dtype."""


class ShapeError(ArrayError, ValueError):
    """Not 1-D."""


class NotContiguousError(ArrayError, ValueError):
    """Not C-contiguous (``numpy.ascontiguousarray`` makes a contiguous copy)."""


class NotWritableError(ArrayError, ValueError):
    """The parameter array is read-only."""


class AliasingError(ArrayError, ValueError):
    """The parameter and gradient arrays overlap (or one is mutably borrowed elsewhere)."""
