"""Typed errors of the customer-service vertical. Every message names the input and says what to do."""

from __future__ import annotations

from ..errors import InvalidInputError, PuyuError


class AudioError(InvalidInputError):
    """The audio given to the service cannot be used."""


class NotAudioError(AudioError):
    """The bytes or file are not a readable audio format."""


class EmptyAudioError(AudioError):
    """The audio holds no samples."""


class SilentAudioError(AudioError):
    """The audio holds no speech (every frame below the voice-activity threshold)."""


class AudioTooLongError(AudioError):
    """The audio is longer than the configured bound."""


class TicketStoreError(PuyuError):
    """The ticket database cannot be reached or written. The turn is kept in the pipeline's outbox."""


class SpeechEngineError(PuyuError):
    """A speech engine (ASR or TTS program) failed to run."""
